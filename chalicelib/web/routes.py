"""One route decorator: the authorizer, CORS and the problem boundary on every route, in one place.

``routes(app, authorizer, cors)`` returns ``route(path, *methods, public=False, body=None)``:

- a route is protected by ``authorizer`` unless it is ``public`` (health, the OpenAPI document);
- CORS is the stage's configuration on every route;
- ``body`` lists the media types the route accepts (Chalice answers 415 to any other);
- every exception of the view ends as a problem document (``http.problem_boundary``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from chalice import Chalice, CORSConfig, Response  # type: ignore[attr-defined]

from chalicelib.web.http import problem_boundary

View = TypeVar("View", bound=Callable[..., Response])


def routes(app: Chalice, authorizer: Any, cors: CORSConfig) -> Callable[..., Callable[[View], View]]:
    def route(path: str, *methods: str, public: bool = False, body: Sequence[str] | None = None) -> Callable[[View], View]:
        options: dict[str, Any] = {"methods": list(methods), "cors": cors}
        if not public:
            options["authorizer"] = authorizer
        if body is not None:
            options["content_types"] = list(body)

        def register(view: View) -> View:
            registered: View = app.route(path, **options)(problem_boundary(view))
            return registered

        return register

    return route
