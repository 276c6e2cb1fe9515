"""The dashboard's pages: sign-in and sign-out (an API key exchanged for a session
cookie), and page shells whose scripts fetch their data from the native API. Pages
of a visitor without a live session redirect to `/login`."""

from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlsplit

from fastapi import APIRouter, Depends, FastAPI, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates

from sandbay.api.deps import TenancyDep
from sandbay.domain.errors import SandbayError
from sandbay.domain.keys import Principal
from sandbay.domain.states import EnvState
from sandbay.services.tenancy.sessions import COOKIE_NAME, SESSION_TTL, csrf_matches, csrf_token

HERE = Path(__file__).parent
templates = Jinja2Templates(directory=HERE / "templates")
router = APIRouter(include_in_schema=False)

#: The pages of the navigation bar: path, title, template.
PAGES: list[tuple[str, str]] = [
    ("/", "Environments"),
    ("/work", "Work items"),
    ("/agents", "Agent runs"),
    ("/instances", "OpenClaw"),
    ("/pools", "Warm pools"),
    ("/keys", "API keys"),
    ("/secrets", "Secrets"),
    ("/usage", "Usage"),
]


class SignedIn:
    """A visitor with a live session: its cookie's secret and what it may do."""

    def __init__(self, secret: str, principal: Principal) -> None:
        self.secret = secret
        self.principal = principal
        self.csrf = csrf_token(secret)


class NotSignedIn(Exception):
    """Rendered as a redirect to the sign-in page."""


async def signed_in(request: Request, tenancy: TenancyDep) -> SignedIn:
    secret = request.cookies.get(COOKIE_NAME)
    if not secret:
        raise NotSignedIn
    try:
        return SignedIn(secret, await tenancy.resolve_session(secret))
    except SandbayError as exc:
        raise NotSignedIn from exc


VisitorDep = Annotated[SignedIn, Depends(signed_in)]


def same_origin_form(request: Request) -> bool:
    """A form POST from our own pages: its `Origin` (or `Referer`) names our host.
    Browsers send `Origin` on every cross-origin POST, so a missing one is a
    same-origin request from an old browser or a script, not a forged form."""
    origin = request.headers.get("origin") or request.headers.get("referer")
    if not origin or origin == "null":
        return origin is None
    return urlsplit(origin).netloc == request.headers.get("host")


#: Every page: never framed by another site (its buttons delete environments), no
#: content-type guessing, and its address kept off other sites' logs.
PAGE_HEADERS = {
    "X-Frame-Options": "DENY",
    "Content-Security-Policy": "frame-ancestors 'none'; base-uri 'none'; object-src 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
}


def page(
    request: Request,
    template: str,
    visitor: SignedIn | None,
    *,
    status_code: int = 200,
    **context: Any,
) -> Response:
    return templates.TemplateResponse(
        request,
        template,
        {
            "visitor": visitor,
            "csrf": visitor.csrf if visitor else "",
            "pages": PAGES,
            "path": request.url.path,
            **context,
        },
        status_code=status_code,
        headers=PAGE_HEADERS,
    )


@router.get("/login", response_class=HTMLResponse)
async def login_page(request: Request) -> Response:
    return page(request, "login.html", None)


@router.post("/login")
async def login(
    request: Request, tenancy: TenancyDep, api_key: Annotated[str, Form(max_length=512)] = ""
) -> Response:
    """Exchange an API key for a session cookie; the key is never stored or shown."""
    if not same_origin_form(request):
        return page(request, "login.html", None, error="sign in from this site", status_code=403)
    try:
        signed = await tenancy.sign_in(api_key.strip())
    except SandbayError as exc:
        return page(request, "login.html", None, error=exc.message, status_code=exc.status_code)
    response = RedirectResponse("/", status_code=303)
    response.set_cookie(
        COOKIE_NAME,
        signed.secret,
        max_age=int(SESSION_TTL.total_seconds()),
        path="/",
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )
    return response


@router.post("/logout")
async def logout(
    request: Request, tenancy: TenancyDep, csrf: Annotated[str, Form(max_length=128)] = ""
) -> Response:
    """End the session on the server (its cookie authenticates nothing any more)."""
    secret = request.cookies.get(COOKIE_NAME)
    if secret and csrf_matches(secret, csrf) and same_origin_form(request):
        await tenancy.sign_out(secret)
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(COOKIE_NAME, path="/")
    return response


@router.get("/", response_class=HTMLResponse)
async def environments_page(request: Request, visitor: VisitorDep) -> Response:
    states = [state.value for state in EnvState if state is not EnvState.DELETED]
    return page(request, "environments.html", visitor, title="Environments", states=states)


@router.get("/environments/{dashboard_env}", response_class=HTMLResponse)
async def environment_page(request: Request, dashboard_env: str, visitor: VisitorDep) -> Response:
    """A page shell that looks nothing up: its script reads the environment from the
    API, which answers another organization's id as it answers a random one."""
    return page(request, "environment.html", visitor, title=dashboard_env, env_id=dashboard_env)


def _section(path: str, title: str) -> None:
    template = f"{path.strip('/')}.html"

    async def section_page(request: Request, visitor: VisitorDep) -> Response:
        return page(request, template, visitor, title=title)

    router.add_api_route(path, section_page, methods=["GET"], response_class=HTMLResponse)


for _path, _title in PAGES[1:]:
    _section(_path, _title)


def install_web(app: FastAPI) -> None:
    """The dashboard's pages, and its scripts and styles (vendored ones included) at
    `/static/`."""

    async def to_login(request: Request, exc: Exception) -> Response:
        return RedirectResponse("/login", status_code=303)

    app.add_exception_handler(NotSignedIn, to_login)
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")
    app.include_router(router)
