"""Test images made on the spot with `docker import` (no registry is reachable)."""

import io
import tarfile
from pathlib import Path

import docker
from docker.errors import ImageNotFound

#: An image with no shell and no python3: Debian's static busybox binary alone (no
#: applet links, so no /bin/sh), an empty /workspace and /tmp.
STATIC_IMAGE = "sandbay-test-static:1"
BUSYBOX = Path("/bin/busybox")


def static_image(client: docker.DockerClient) -> str:
    """`STATIC_IMAGE`, imported once."""
    try:
        client.images.get(STATIC_IMAGE)
        return STATIC_IMAGE
    except ImageNotFound:
        pass
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for directory in ("bin", "tmp", "workspace"):
            info = tarfile.TarInfo(directory)
            info.type, info.mode = tarfile.DIRTYPE, 0o1777 if directory == "tmp" else 0o755
            tar.addfile(info)
        tar.add(str(BUSYBOX), arcname="bin/busybox")
    repository, tag = STATIC_IMAGE.split(":")
    client.api.import_image_from_data(
        buffer.getvalue(), repository=repository, tag=tag, changes=["WORKDIR /workspace"]
    )
    return STATIC_IMAGE
