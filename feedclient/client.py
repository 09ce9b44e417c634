"""The REST side of the client: tokens (with refresh), and the few calls a bot needs."""
import threading

import requests

from feedclient.errors import ApiError
from feedclient.stream import Subscription


class FeedClient:
    """A client of one feed server.

    :param base_url: e.g. ``https://feed.example`` (a path prefix behind a proxy is kept).
    :param access_token: a token to start with (or call :meth:`login` / :meth:`register`).
    :param refresh_token: used by :meth:`refresh` when the access token expires.
    :param refresher: optional callable returning a new access token; when given, it is used
        instead of ``POST /api/auth/refresh`` (e.g. to ask another service for a token).
    :param verify: as in requests: False for no TLS check, or the path of a CA bundle (a
        self-signed certificate); streams honour it too.
    :param timeout: seconds for a REST call.
    """

    def __init__(self, base_url, access_token=None, refresh_token=None, refresher=None,
                 verify=True, timeout=10.0):
        self.base_url = base_url.rstrip("/")
        self.access_token = access_token
        self.refresh_token = refresh_token
        self.refresher = refresher
        self.verify = verify
        self.timeout = timeout
        self.user = None
        self.http = requests.Session()
        # Refresh tokens rotate and a reused one revokes the session: streams in several
        # threads that see token_expired together must refresh once, not once each.
        self._refresh_lock = threading.Lock()

    # -- tokens ---------------------------------------------------------------------------------

    def register(self, username, password, display_name=None):
        """Create an account and sign in as it; return the User."""
        body = {"username": username, "password": password}
        if display_name is not None:
            body["display_name"] = display_name
        return self._signed_in(self.request("POST", "/api/auth/register", json=body, auth=False))

    def login(self, username, password):
        """Sign in; return the User."""
        return self._signed_in(self.request("POST", "/api/auth/login", auth=False,
                                            json={"username": username, "password": password}))

    def _signed_in(self, answer):
        self.user = answer["user"]
        self.access_token, self.refresh_token = answer["access_token"], answer["refresh_token"]
        return self.user

    def refresh(self, stale_token=None):
        """Get a new access token; return it.

        With *stale_token*, refresh only if the current token is still that one (another
        thread may have refreshed already). The server rotates refresh tokens, so the new one
        it answers is kept; a server that sends none leaves the old one in use.

        :raises ApiError: the refresh was refused (the session is over: sign in again).
        """
        with self._refresh_lock:
            if stale_token is not None and self.access_token != stale_token:
                return self.access_token
            if self.refresher is not None:
                self.access_token = self.refresher()
                return self.access_token
            if not self.refresh_token:
                raise ApiError(401, "token_expired", "the access token expired and there is "
                               "no refresh token")
            answer = self.request("POST", "/api/auth/refresh", auth=False, headers={
                "Authorization": f"Bearer {self.refresh_token}"})
            self.access_token = answer["access_token"]
            self.refresh_token = answer.get("refresh_token") or self.refresh_token
            return self.access_token

    def stream_ticket(self):
        """Return a single-use ticket that opens one stream within 30 seconds."""
        return self.request("POST", "/api/auth/stream-ticket")["ticket"]

    # -- REST -----------------------------------------------------------------------------------

    def request(self, method, path, json=None, params=None, headers=None, auth=True):
        """Send a request; return the decoded JSON answer (None when empty).

        An expired access token is refreshed once and the request sent again (a 401 did
        nothing, so even a POST is safe to repeat).

        :raises ApiError: the server answered an error.
        :raises requests.RequestException: the server could not be reached.
        """
        for attempt in (1, 2):
            token = self.access_token
            sent = dict(headers or {})
            if auth and token:
                sent["Authorization"] = f"Bearer {token}"
            # verify per request: a session's own is overridden by REQUESTS_CA_BUNDLE.
            response = self.http.request(method, self.base_url + path, json=json, params=params,
                                         headers=sent, timeout=self.timeout, verify=self.verify)
            if response.ok:
                return response.json() if response.content else None
            error = ApiError.from_response(response)
            if not (auth and attempt == 1 and error.code == "token_expired"):
                raise error
            self.refresh(stale_token=token)
        raise AssertionError("unreachable")

    def health(self):
        """Return ``GET /healthz`` (raises ApiError when the server reports a failure)."""
        return self.request("GET", "/healthz", auth=False)

    def me(self):
        """Return the signed-in User."""
        return self.request("GET", "/api/me")

    def follow(self, username):
        """Follow *username*."""
        return self.request("PUT", f"/api/users/{username}/follow")

    def create_post(self, content):
        """Write a post; return it."""
        return self.request("POST", "/api/posts", json={"content": content})

    def edit_post(self, post_id, content):
        """Replace a post's content; return it."""
        return self.request("PATCH", f"/api/posts/{post_id}", json={"content": content})

    def delete_post(self, post_id):
        """Delete a post."""
        self.request("DELETE", f"/api/posts/{post_id}")

    def react(self, post_id, reaction="like"):
        """Set the viewer's reaction to a post; return ``{"post_id", "reaction_data"}``."""
        return self.request("PUT", f"/api/posts/{post_id}/reaction", json={"type": reaction})

    def comment(self, post_id, content):
        """Comment on a post; return the Comment."""
        return self.request("POST", f"/api/posts/{post_id}/comments", json={"content": content})

    def delete_comment(self, comment_id):
        """Delete a comment."""
        self.request("DELETE", f"/api/comments/{comment_id}")

    def like_comment(self, comment_id):
        """Like a comment; return ``{"comment_id", "post_id", "like_count", "liked"}``."""
        return self.request("PUT", f"/api/comments/{comment_id}/like")

    def typing(self, post_id):
        """Announce "typing" on a post's channel."""
        self.request("POST", f"/api/posts/{post_id}/typing")

    # -- streams --------------------------------------------------------------------------------

    def follow_feed(self, transport="sse", last_event_id=None, **options):
        """Return a :class:`Subscription` to the signed-in user's feed; iterate it for events."""
        return Subscription(self, "feed", transport, last_event_id, **options)

    def follow_post(self, post_id, transport="sse", last_event_id=None, **options):
        """Return a :class:`Subscription` to one post's channel; iterate it for events."""
        return Subscription(self, f"post/{post_id}", transport, last_event_id, **options)

    def close(self):
        """Close the HTTP connections."""
        self.http.close()
