"""Files and Batches endpoints: validate the request, call one service, answer OpenAI's shape."""

from __future__ import annotations

from collections.abc import Iterator

from django.conf import settings
from django.http import FileResponse, HttpResponseRedirect, StreamingHttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import status
from rest_framework.parsers import FormParser, JSONParser, MultiPartParser
from rest_framework.response import Response
from rest_framework.views import APIView

from batchserver import live
from batchserver.api.errors import ApiError, NotFoundError
from batchserver.api.pagination import cursor_page, list_body
from batchserver.storage import download_url, store_errors
from jobs.api import serializers as s
from jobs.assembly import output_line, output_rows
from jobs.models import Batch, BatchRequest, File
from jobs.services import batches as batch_services
from jobs.services import files as file_services
from jobs.services import retry as retry_services
from jobs.services import scheduling
from jobs.uploads import LimitedUploadHandler

LIST_PARAMS = [
    OpenApiParameter("after", str, description="Id of the object after which the page starts."),
    OpenApiParameter("limit", int, description="1-100 (files: up to 10,000), default 20."),
]


# get() rather than first(): no ORDER BY to build for a lookup by primary key.
def get_file(request, file_id: str) -> File:
    try:
        return File.objects.owned_by(request.user).get(id=file_id)
    except File.DoesNotExist:
        raise NotFoundError("file", file_id, param="file_id") from None


def get_batch(request, batch_id: str) -> Batch:
    try:
        return Batch.objects.owned_by(request.user).get(id=batch_id)
    except Batch.DoesNotExist:
        raise NotFoundError("batch", batch_id, param="batch_id") from None


class FileListCreateView(APIView):
    parser_classes = [MultiPartParser, FormParser]

    @extend_schema(
        operation_id="createFile",
        request={"multipart/form-data": s.FileUploadSerializer},
        responses=s.FileObjectSerializer,
    )
    def post(self, request):
        handler = LimitedUploadHandler(request._request)
        request._request.upload_handlers = [handler]
        data = request.data
        if handler.too_large:
            raise ApiError(
                f"File is larger than the limit of {live.get('BATCH_MAX_FILE_BYTES')} bytes.",
                param="file",
                code="file_too_large",
                status_code=status.HTTP_413_REQUEST_ENTITY_TOO_LARGE,
            )
        serializer = s.FileUploadSerializer(data=s.nest_form_fields(data))
        serializer.is_valid(raise_exception=True)
        upload = serializer.validated_data["file"]
        purpose = serializer.validated_data["purpose"]
        self._check_content(upload, purpose, handler.lines)
        expires = serializer.validated_data.get("expires_after")
        file = file_services.create_file(
            request.user,
            upload,
            purpose=purpose,
            filename=upload.name,
            expires_after_seconds=expires["seconds"]
            if expires
            else (settings.FILE_DEFAULT_EXPIRES_SECONDS or None),
            line_count=handler.lines,
        )
        return Response(file.as_openai())

    @staticmethod
    def _check_content(upload, purpose: str, lines: int) -> None:
        if upload.size == 0:
            raise ApiError("The uploaded file is empty.", param="file", code="empty_file")
        if purpose != File.Purpose.BATCH:
            return
        if not upload.name.lower().endswith(".jsonl"):
            raise ApiError(
                "A batch input file must be a .jsonl file.",
                param="file",
                code="invalid_file_format",
            )
        if lines > live.get("BATCH_MAX_LINES"):
            raise ApiError(
                f"A batch input file may have at most {live.get('BATCH_MAX_LINES')} "
                f"lines; this one has {lines}.",
                param="file",
                code="too_many_lines",
            )

    @extend_schema(
        operation_id="listFiles",
        parameters=[
            *LIST_PARAMS,
            OpenApiParameter("order", str, enum=["asc", "desc"]),
            OpenApiParameter("purpose", str),
        ],
        responses=s.list_serializer("FileList", s.FileObjectSerializer),
    )
    def get(self, request):
        queryset = File.objects.owned_by(request.user)
        if request.query_params.get("purpose"):
            queryset = queryset.filter(purpose=request.query_params["purpose"])
        rows, has_more = cursor_page(
            queryset, request.query_params, default_limit=10000, maximum=10000
        )
        return Response(list_body([f.as_openai() for f in rows], has_more))


class FileDetailView(APIView):
    @extend_schema(operation_id="retrieveFile", responses=s.FileObjectSerializer)
    def get(self, request, file_id: str):
        return Response(get_file(request, file_id).as_openai())

    @extend_schema(operation_id="deleteFile", responses=s.FileDeletedSerializer)
    def delete(self, request, file_id: str):
        file = get_file(request, file_id)
        file_services.delete_file(file)
        return Response({"id": file_id, "object": "file", "deleted": True})


class FileContentView(APIView):
    def perform_content_negotiation(self, request, force=False):
        # Clients ask for the bytes with any Accept header (the SDK sends application/binary);
        # errors are still answered as JSON.
        return super().perform_content_negotiation(request, force=True)

    @extend_schema(
        operation_id="downloadFile",
        responses={(200, "application/octet-stream"): OpenApiTypes.BINARY},
    )
    def get(self, request, file_id: str):
        file = get_file(request, file_id)
        content_type = (
            "application/jsonl" if file.filename.endswith(".jsonl") else "application/octet-stream"
        )
        storage = file.content.storage
        try:
            # FILE_DOWNLOAD_REDIRECT on an object store: the client fetches the bytes from
            # the store itself (a presigned URL; clients drop our bearer key on the redirect).
            url = download_url(storage, file.content.name, file.filename, content_type)
            if url:
                return HttpResponseRedirect(url)
            handle = storage.open(file.content.name, "rb")  # a stream, read as it is sent
        except FileNotFoundError:
            raise NotFoundError("file content", file_id, param="file_id") from None
        except store_errors():
            raise ApiError(
                "The file store is unavailable; try again later.",
                param="file_id",
                code="storage_unavailable",
                status_code=status.HTTP_503_SERVICE_UNAVAILABLE,
            ) from None
        response = FileResponse(
            handle, content_type=content_type, as_attachment=True, filename=file.filename
        )
        response.headers.setdefault("Content-Length", str(file.bytes))
        return response


class BatchListCreateView(APIView):
    parser_classes = [JSONParser]

    @extend_schema(
        operation_id="createBatch",
        request=s.BatchCreateSerializer,
        responses=s.BatchObjectSerializer,
    )
    def post(self, request):
        serializer = s.BatchCreateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        expires = data.get("output_expires_after")
        batch = batch_services.create_batch(
            request.user,
            input_file_id=data["input_file_id"],
            endpoint=data["endpoint"],
            completion_window=data["completion_window"],
            metadata=data.get("metadata"),
            output_expires_after=expires["seconds"] if expires else None,
            # Extension: metadata {"priority": "5"} works for clients that cannot add parameters.
            priority=data["priority"]
            if "priority" in request.data
            else (scheduling.priority_from_metadata(data.get("metadata")) or 0),
            webhook_url=data.get("webhook_url", ""),
            webhook_progress_percent=data.get("webhook_progress_percent"),
        )
        return Response(batch.as_openai())

    @extend_schema(
        operation_id="listBatches",
        parameters=LIST_PARAMS,
        responses=s.list_serializer("BatchList", s.BatchObjectSerializer),
    )
    def get(self, request):
        params = request.query_params.copy()
        params["order"] = "desc"
        rows, has_more = cursor_page(Batch.objects.owned_by(request.user), params)
        return Response(list_body([b.as_openai() for b in rows], has_more))


class BatchDetailView(APIView):
    @extend_schema(operation_id="retrieveBatch", responses=s.BatchObjectSerializer)
    def get(self, request, batch_id: str):
        return Response(get_batch(request, batch_id).as_openai())


class BatchCancelView(APIView):
    parser_classes = [JSONParser, FormParser]

    @extend_schema(operation_id="cancelBatch", request=None, responses=s.BatchObjectSerializer)
    def post(self, request, batch_id: str):
        batch = batch_services.request_cancel(get_batch(request, batch_id))
        return Response(batch.as_openai())


RETRY_DESCRIPTION = """Extension. Creates a child batch (its `parent_batch_id` is this batch)
holding only the lines of this batch that failed, expired or were cancelled, with their original
`custom_id` and `body`; the successes stay in this batch's output file, so join both on
`custom_id`.

Allowed once the batch has ended (`completed`, `failed`, `expired` or `cancelled`): 409
`batch_not_finished` while it runs, 409 `nothing_to_retry` when no line needs a retry. The
child's input is a new file with purpose `batch`, validated like any upload. The child inherits
the endpoint, `completion_window`, `metadata`, `priority` and output expiry; the optional body
overrides `completion_window`, `metadata` and `priority`. Each call creates a new child."""


class BatchRetryView(APIView):
    parser_classes = [JSONParser, FormParser]

    @extend_schema(
        operation_id="retryBatch",
        description=RETRY_DESCRIPTION,
        request=s.BatchRetrySerializer,
        responses=s.BatchObjectSerializer,
    )
    def post(self, request, batch_id: str):
        parent = get_batch(request, batch_id)
        serializer = s.BatchRetrySerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        child = retry_services.retry_batch(parent, **serializer.validated_data)
        return Response(child.as_openai())


PARTIAL_DESCRIPTION = """Extension. Streams the {kind} lines this batch has finished so far, in
exactly the shape of its {file} file ({which}), ordered by input line. Works in every status:
poll it while the batch runs to process results early; a later download holds every line of an
earlier one (lines appear as their chunk is committed), and once the batch has ended it holds the
same lines as the {file} file. The `X-Batch-Status` response header is the batch's status when
the download began. Join lines to your requests on `custom_id`."""


def finished_lines(batch: Batch, kind: str) -> Iterator[bytes]:
    """The finished rows of one kind as output lines, read from the database in slices."""
    rows = BatchRequest.objects.filter(batch=batch)
    done = BatchRequest.Status.COMPLETED
    if kind == "output":
        rows = rows.filter(status=done)
    else:
        rows = rows.exclude(status__in=(done, BatchRequest.Status.PENDING))
    for row in output_rows(rows):
        yield output_line(row).encode()


class _PartialResultsView(APIView):
    kind = "output"

    def perform_content_negotiation(self, request, force=False):
        return super().perform_content_negotiation(request, force=True)

    def get(self, request, batch_id: str):
        batch = get_batch(request, batch_id)
        response = StreamingHttpResponse(
            finished_lines(batch, self.kind), content_type="application/jsonl"
        )
        filename = f"{batch.id}_partial_{self.kind}.jsonl"
        response["Content-Disposition"] = f'attachment; filename="{filename}"'
        response["X-Batch-Status"] = batch.status
        return response


class BatchPartialOutputView(_PartialResultsView):
    kind = "output"

    @extend_schema(
        operation_id="downloadBatchPartialOutput",
        description=PARTIAL_DESCRIPTION.format(kind="successful", file="output", which="2xx"),
        responses={(200, "application/jsonl"): OpenApiTypes.BINARY},
    )
    def get(self, request, batch_id: str):
        return super().get(request, batch_id)


class BatchPartialErrorsView(_PartialResultsView):
    kind = "errors"

    @extend_schema(
        operation_id="downloadBatchPartialErrors",
        description=PARTIAL_DESCRIPTION.format(
            kind="unsuccessful",
            file="error",
            which="engine errors, expired and cancelled lines",
        ),
        responses={(200, "application/jsonl"): OpenApiTypes.BINARY},
    )
    def get(self, request, batch_id: str):
        return super().get(request, batch_id)
