"""Daytona's object storage push (`/object-storage/push-access`): the S3 endpoint,
bucket and key the SDK uploads a build's local files with (one tar per
`add_local_file`, `add_local_dir`, requirements file or COPY source, at
`{organizationId}/{hash}/context.tar`), before it names their hashes in the build.
Without object storage configured the answer is a 400 saying so."""

from typing import Annotated

from fastapi import APIRouter, Depends
from pydantic import BaseModel, ConfigDict
from pydantic.alias_generators import to_camel

from sandbay.domain.build_contexts import PushAccess
from sandbay.services.images.service import ImagesService

from .errors import DaytonaPrincipal
from .snapshots import get_images

router = APIRouter(prefix="/object-storage", tags=["daytona"])


class DaytonaStorageAccess(BaseModel):
    """StorageAccessDto. `organizationId` is the key prefix the SDK uploads under:
    the organization's own prefix in the bucket."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True)

    access_key: str
    secret: str
    session_token: str
    storage_url: str
    organization_id: str
    bucket: str
    region: str

    @classmethod
    def of(cls, access: PushAccess) -> "DaytonaStorageAccess":
        return cls(
            access_key=access.access_key_id,
            secret=access.secret_access_key,
            session_token=access.session_token,
            storage_url=access.endpoint,
            organization_id=access.owner_prefix,
            bucket=access.bucket,
            region=access.region,
        )


@router.get("/push-access")
async def get_push_access(
    principal: DaytonaPrincipal, images: Annotated[ImagesService, Depends(get_images)]
) -> DaytonaStorageAccess:
    """Credentials to upload build contexts to this organization's prefix."""
    return DaytonaStorageAccess.of(await images.push_access(principal))
