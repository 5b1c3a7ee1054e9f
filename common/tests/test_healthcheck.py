import pytest

from dyimages_common.process.healthcheck import main
from testkit.http_server import ImageServer, Route

pytestmark = pytest.mark.unit


def test_probe_follows_the_status(image_server: ImageServer) -> None:
    image_server.add("/health", Route(body=b"ok", content_type="text/plain"))
    image_server.add("/starting", Route(body=b"", status=503, content_type="text/plain"))
    assert main([image_server.url("/health")]) == 0
    assert main([image_server.url("/starting")]) == 1
    assert main(["http://127.0.0.1:9/health"]) == 1  # nothing listens on the discard port
    assert main(["http://example.org/"]) == 2  # only local probes
