"""What an AWS request is, read from its HTTP shape: service, operation and protocol.

Fault rules and the SQS handling need to know which API call a request is without
parsing it the way moto does. The signature's credential scope names the service of
every signed request; `X-Amz-Target` names the operation of the JSON protocols,
`Action` the query protocol's, and S3's REST operations are read from the method and
the path (path-style addressing, which botocore uses for an IP-address endpoint).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, replace
from typing import Any, Literal
from urllib.parse import parse_qs, parse_qsl, urlencode

__all__ = ["AwsCall", "Protocol"]

Protocol = Literal["json", "query", "rest-xml", "rest-json"]

# Target prefixes of the JSON protocols, for the unsigned calls (Cognito's InitiateAuth)
# whose service no credential scope names.
_TARGET_SERVICES = {
    "DynamoDB_20120810": "dynamodb",
    "AmazonSQS": "sqs",
    "AWSEvents": "events",
    "secretsmanager": "secretsmanager",
    "AWSCognitoIdentityProviderService": "cognito-idp",
}
_SCOPE = re.compile(r"Credential=[^/]+/\d{8}/([^/]+)/([^/]+)/aws4_request")
# Characters of a body that fault rules look at: enough for any API call's parameters,
# not a whole uploaded object.
MATCH_BODY_BYTES = 64 * 1024


@dataclass(frozen=True)
class AwsCall:
    """One HTTP request to the emulator, as the AWS call it is."""

    service: str  # "" for requests that are not AWS calls (moto's own API, a JWKS fetch)
    operation: str  # "" where it can not be told (an S3 bucket subresource)
    protocol: Protocol
    region: str
    method: str
    path: str
    query: str
    content_type: str
    body: bytes

    @classmethod
    def of(cls, environ: dict[str, Any], body: bytes) -> AwsCall:
        """The call `environ` (with its body already read) makes."""
        target = str(environ.get("HTTP_X_AMZ_TARGET", ""))
        query = str(environ.get("QUERY_STRING", ""))
        scope = _SCOPE.search(str(environ.get("HTTP_AUTHORIZATION", ""))) or _SCOPE.search(
            "Credential=" + (parse_qs(query).get("X-Amz-Credential") or [""])[0]
        )
        region, service = scope.groups() if scope else ("us-east-1", "")
        prefix, _, target_operation = target.partition(".")
        service = service.lower() or _TARGET_SERVICES.get(prefix, "")
        content_type = str(environ.get("CONTENT_TYPE", ""))
        method = str(environ.get("REQUEST_METHOD", "GET"))
        path = str(environ.get("PATH_INFO", "/"))
        protocol: Protocol
        if target:
            protocol, operation = "json", target_operation
        elif content_type.startswith("application/x-www-form-urlencoded"):
            protocol = "query"
            operation = dict(parse_qsl(body.decode("utf-8", "replace"))).get("Action", "")
        elif service == "s3":
            protocol, operation = "rest-xml", _s3_operation(method, path, query, environ)
        else:
            protocol, operation = "rest-json", ""
        return cls(
            service=service,
            operation=operation,
            protocol=protocol,
            region=region,
            method=method,
            path=path,
            query=query,
            content_type=content_type,
            body=body,
        )

    @property
    def text(self) -> str:
        """What a rule's `match` is looked for in: the path, the query string and the body."""
        head = self.body[:MATCH_BODY_BYTES].decode("utf-8", "replace")
        return f"{self.path}?{self.query}\n{head}"

    def params(self) -> dict[str, Any]:
        """The request's parameters (JSON or query protocol); empty for the REST ones."""
        try:
            if self.protocol == "json":
                loaded = json.loads(self.body or b"{}")
                return loaded if isinstance(loaded, dict) else {}
            if self.protocol == "query":
                return dict(parse_qsl(self.body.decode()))
        except ValueError:  # a malformed body is moto's to refuse, as AWS would
            pass
        return {}

    def with_params(self, **changes: Any) -> AwsCall:
        """The same call with some parameters changed, re-encoded in its protocol."""
        params = {**self.params(), **changes}
        if self.protocol == "json":
            return replace(self, body=json.dumps(params).encode())
        return replace(self, body=urlencode({k: str(v) for k, v in params.items()}).encode())


def _s3_operation(method: str, path: str, query: str, environ: dict[str, Any]) -> str:
    """The S3 operation of a path-style request, for the operations objects go through."""
    bucket, _, key = path.lstrip("/").partition("/")
    sub = {  # the signature of a presigned URL is not part of the operation
        name: values
        for name, values in parse_qs(query, keep_blank_values=True).items()
        if not name.lower().startswith("x-amz-")
    }
    if not bucket:
        return "ListBuckets" if method == "GET" else ""
    if not key:
        if "delete" in sub and method == "POST":
            return "DeleteObjects"
        if set(sub) - {"list-type", "prefix", "delimiter", "continuation-token", "max-keys"}:
            return ""  # a bucket subresource (?notification, ?policy, ...)
        bucket_operations = {
            "GET": "ListObjectsV2" if "list-type" in sub else "ListObjects",
            "PUT": "CreateBucket",
            "HEAD": "HeadBucket",
            "DELETE": "DeleteBucket",
        }
        return bucket_operations.get(method, "")
    if "uploads" in sub:
        return "CreateMultipartUpload" if method == "POST" else "ListMultipartUploads"
    if "uploadId" in sub:
        multipart = {
            "PUT": "UploadPart",
            "POST": "CompleteMultipartUpload",
            "DELETE": "AbortMultipartUpload",
            "GET": "ListParts",
        }
        return multipart.get(method, "")
    if method == "PUT" and "HTTP_X_AMZ_COPY_SOURCE" in environ:
        return "CopyObject"
    object_operations = {
        "GET": "GetObject",
        "PUT": "PutObject",
        "HEAD": "HeadObject",
        "DELETE": "DeleteObject",
    }
    return object_operations.get(method, "") if not sub or "versionId" in sub else ""
