"""What a Hugging Face Hub repo holds: its commit and files with sizes and hashes.

Asked through `huggingface_hub` (`HfApi.model_info(..., files_metadata=True)`) at the endpoint
and with the token corral.envs names. Every failure becomes a StoreError that says what to do.
"""
from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import quote

from corral import envs
from corral.errors import HubUnavailableError, RemoteModelNotFoundError, StoreError


@dataclass(frozen=True)
class RemoteFile:
    path: str  # path inside the repo
    size: int | None  # bytes, when the Hub says
    sha256: str | None  # hex sha256 of an LFS file
    git_oid: str | None  # git blob sha1 of a file kept in git itself


@dataclass(frozen=True)
class RepoListing:
    repo: str  # "ORG/REPO"
    commit: str  # commit sha the files were listed at; downloads use it so all files match
    files: dict[str, RemoteFile]
    endpoint: str

    def resolve_url(self, path: str) -> str:
        return f"{self.endpoint}/{self.repo}/resolve/{self.commit}/{quote(path)}"


def fetch_listing(repo: str, revision: str = "main") -> RepoListing:
    """List `repo` at `revision`; StoreError when the Hub is unreachable or the repo/revision is unknown."""
    from huggingface_hub import HfApi
    from huggingface_hub import errors as hf_errors

    endpoint = envs.hf_endpoint()
    api = HfApi(endpoint=endpoint, token=envs.hf_token())
    try:
        info = api.model_info(repo, revision=revision, files_metadata=True)
    except hf_errors.GatedRepoError:
        raise StoreError(
            f"repository {repo} is gated: accept its terms on {endpoint}/{repo} and set HF_TOKEN to your access token"
        ) from None
    except hf_errors.RepositoryNotFoundError:
        raise RemoteModelNotFoundError(
            f"repository {repo} not found on {endpoint}; check the name (if it is private, set HF_TOKEN)"
        ) from None
    except hf_errors.RevisionNotFoundError:
        raise RemoteModelNotFoundError(f"repository {repo} has no revision {revision!r}; use a branch, tag or commit that exists") from None
    except hf_errors.HfHubHTTPError as e:
        status = getattr(getattr(e, "response", None), "status_code", "an error")
        raise HubUnavailableError(f"the Hugging Face Hub at {endpoint} answered {status} for {repo}; try again later") from None
    except Exception as e:
        if is_transport_error(e):
            raise HubUnavailableError(unreachable_message(endpoint, e)) from None
        raise HubUnavailableError(_unreadable(endpoint, repo, e)) from None
    try:
        files = {s.rfilename: _remote_file(s, endpoint) for s in info.siblings or []}
    except (AttributeError, TypeError, ValueError) as e:
        raise HubUnavailableError(_unreadable(endpoint, repo, e)) from None
    commit = _hex(info.sha, 40, f"commit of {repo}", endpoint) or revision
    return RepoListing(repo=repo, commit=commit, files=files, endpoint=endpoint)


def _remote_file(sibling, endpoint: str) -> RemoteFile:
    """One listed file, its path, size and hashes checked (they name URLs and store files)."""
    path = sibling.rfilename
    if not isinstance(path, str) or not path or "\0" in path:
        raise ValueError(f"file name {path!r}")
    size = sibling.lfs.size if sibling.lfs else sibling.size
    if size is not None and (not isinstance(size, int) or isinstance(size, bool) or size < 0):
        raise ValueError(f"size {size!r} of {path}")
    return RemoteFile(
        path=path,
        size=size,
        sha256=_hex(sibling.lfs.sha256 if sibling.lfs else None, 64, f"sha256 of {path}", endpoint),
        git_oid=(None if sibling.lfs else _hex(sibling.blob_id, 40, f"git blob id of {path}", endpoint)),
    )


def _unreadable(endpoint: str, repo: str, e: BaseException) -> str:
    return (f"the Hub at {endpoint} answered something corral cannot read for {repo} ({type(e).__name__}: "
            f"{str(e)[:200]}); if HF_ENDPOINT points at a mirror, that mirror is broken")


def _hex(value: object, length: int, what: str, endpoint: str) -> str | None:
    """`value` lowercased if it is `length` hex digits, None if absent. These values name files
    in the store and URLs, so anything else from the Hub (or a mirror) is refused: StoreError."""
    if value is None or value == "":
        return None
    text = value.lower() if isinstance(value, str) else ""
    if len(text) != length or any(c not in "0123456789abcdef" for c in text):
        raise StoreError(
            f"the Hub at {endpoint} sent an invalid {what} ({str(value)[:80]!r}, expected {length} hex digits); "
            "if HF_ENDPOINT points at a mirror, that mirror is broken or hostile"
        )
    return text


def is_transport_error(e: BaseException) -> bool:
    """True for network failures (refused, DNS, TLS, timeouts) from any HTTP client in use."""
    if isinstance(e, OSError):
        return True
    root = type(e).__module__.split(".")[0]
    return root in ("httpx", "httpx2", "httpcore", "requests", "urllib3") or type(e).__name__ == "OfflineModeIsEnabled"


def unreachable_message(endpoint: str, e: BaseException) -> str:
    return (
        f"cannot reach the Hugging Face Hub at {endpoint} ({type(e).__name__}: {e}); "
        "check your network connection, or set HF_ENDPOINT to a reachable mirror"
    )
