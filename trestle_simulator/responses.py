"""The shapes of Trestle's responses: OData JSON, error bodies, and the odd non-JSON ones."""

from __future__ import annotations

from typing import Any

import msgspec
from isal import igzip
from werkzeug.wrappers import Request, Response

ODATA_JSON = "application/json; odata.metadata=minimal"
PLAIN_JSON = "application/json"
# Pages of wide records are megabytes: favour speed over ratio. ISA-L's gzip at level 1
# takes 35 ms for a 19 MB page where zlib's takes 127, at the same size: the simulator's
# CPU stands in for Trestle's servers, yet shares the cores with what a benchmark measures.
GZIP_LEVEL = 1

ERROR_CODES = {
    400: "BadRequest",
    401: "Unauthorized",
    403: "Forbidden",
    404: "NotFound",
    405: "MethodNotAllowed",
    429: "TooManyRequests",
    500: "InternalServerError",
    502: "BadGateway",
    503: "ServiceUnavailable",
    504: "GatewayTimeout",
}

PROXY_PAGE = (
    "<html>\r\n<head><title>{status} {reason}</title></head>\r\n<body>\r\n"
    "<center><h1>{status} {reason}</h1></center>\r\n<hr><center>nginx</center>\r\n"
    "</body>\r\n</html>\r\n"
)


def encode_json(body: Any) -> bytes:
    """Compact UTF-8 JSON, byte for byte what `json.dumps(ensure_ascii=False,
    separators=(",", ":"))` writes for these bodies, at about a fifth of the CPU: a page of
    wide records is megabytes, and in benchmarks the simulator shares the cores with the
    client it stands in for."""
    return _ENCODER.encode(body)


_ENCODER = msgspec.json.Encoder()


def odata_response(body: Any, status: int = 200) -> Response:
    response = Response(encode_json(body), status=status, content_type=ODATA_JSON)
    response.headers["OData-Version"] = "4.0"
    return response


def error_response(status: int, message: str, code: str | None = None) -> Response:
    """Trestle's error body since release 5.8: {"error": {"code", "message"}}."""
    body = {"error": {"code": code or ERROR_CODES.get(status, str(status)), "message": message}}
    return odata_response(body, status)


def text_response(text: str, status: int = 200, content_type: str = "text/plain") -> Response:
    return Response(
        text.encode("utf-8"), status=status, content_type=f"{content_type}; charset=utf-8"
    )


def proxy_error_page(status: int) -> Response:
    reason = {502: "Bad Gateway", 503: "Service Temporarily Unavailable"}.get(status, "Error")
    page = PROXY_PAGE.format(status=status, reason=reason)
    return Response(page, status=status, content_type="text/html")


def control_response(body: Any, status: int = 200) -> Response:
    return Response(encode_json(body), status=status, content_type=PLAIN_JSON)


def compress_if_accepted(request: Request, response: Response) -> Response:
    """gzip the body when the client asks for it, as Trestle's front end does."""
    if "gzip" not in request.headers.get("Accept-Encoding", "").lower():
        return response
    if response.direct_passthrough or response.status_code in (204, 304):
        return response
    body = response.get_data()
    response.set_data(igzip.compress(body, compresslevel=GZIP_LEVEL))
    response.headers["Content-Encoding"] = "gzip"
    response.headers["Vary"] = "Accept-Encoding"
    return response
