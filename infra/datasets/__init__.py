"""Datasets in and out of a project: folder layouts (MVTec AD, flat), safe archive reading, MVTec export."""
