"""Every app serves the routes its routers built at import: nothing is analysed again per app (api/routing.py)."""

from __future__ import annotations

from pathlib import Path

from api import routers
from api.app import create_app
from api.console import ROUTERS as CONSOLE_ROUTERS
from infra.settings import Settings


def test_an_app_serves_the_routers_routes_themselves(tmp_path: Path) -> None:
    app = create_app(Settings(data_dir=tmp_path / "data"))
    # include_router would leave wrappers without a path, each building its own copy of every route per app.
    assert all(getattr(route, "path", None) for route in app.routes)
    api_routers = [module.router for module in vars(routers).values() if hasattr(module, "router")]
    built = [route for router in [*api_routers, *CONSOLE_ROUTERS] for route in router.routes]
    assert len(api_routers) >= 18 and len(built) > 80
    served = {id(route) for route in app.routes}
    assert [route.path for route in built if id(route) not in served] == []
    assert all(route.path.startswith("/api/") for router in api_routers for route in router.routes)
