from fastapi import APIRouter

router = APIRouter(tags=["trainable_models"])
