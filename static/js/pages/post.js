// A post's page: the post, live comments, comment likes and "X is typing…".
import { api } from "../session.js";
import { showToast } from "../toasts.js";
import { contentOf, markPending, pendingElement } from "../forms.js";
import { pendingWrites, startOutbox, submit } from "../outbox.js";
import { applyPostEvent, cardOf, react, settleReaction, shareCommentCount, showPendingReactions } from "./posts.js";
import { insert, nameWithHandle, renderComment, setCommentCount, setLikeCount, setLiked, updatePost } from "../render.js";

const TYPING_SHOWN_MS = 4000;   // a typing notice fades when no new one comes
const TYPING_SEND_MS = 3000;    // at most one announcement per this long (the server limits too)
const COMMENT_PAGE_SIZE = 100;

/** Run the post page: *page* is {viewerId, postId, postAuthorId}. Returns form handlers. */
export function startPostPage(live, page) {
  const comments = document.querySelector("[data-role=comments]");
  const typing = typingIndicator(document.querySelector("[data-role=typing]"));
  const addComment = (comment) => {
    typing.clear(comment.author.id);
    if (rowOf(comment.id)) return;
    const row = renderComment(comment, page.viewerId, page.postAuthorId);
    if (!row) return;
    insert(comments, row, { atTop: false });
    countBy(page.postId, comments, 1);
  };
  const removeComment = (id) => {
    const row = rowOf(id);
    if (!row) return;
    row.remove();
    countBy(page.postId, comments, -1);
  };

  live.addEventListener("event", ({ detail: event }) => {
    if (event.type === "new_comment") addComment(event.comment);
    else if (event.type === "comment_deleted") removeComment(event.comment_id);
    else if (event.type === "comment_like") {
      const row = rowOf(event.comment_id);
      if (row) setLikeCount(row, event.like_count);
    } else if (event.type === "typing") {
      if (event.user.id !== page.viewerId) typing.show(event.user);
    } else {
      if (event.type === "post_deleted") postGone();
      applyPostEvent(event);
    }
  });
  live.addEventListener("resync", () => reload(page, comments));
  announceTyping(page.postId);

  const showPending = (write) => {
    if (write.kind === "comment" && write.meta.postId === page.postId) {
      comments.append(pendingComment(write, page));
      document.querySelector("[data-role=no-comments]").hidden = true;
    } else if (write.kind === "like") {
      const button = rowOf(write.meta.commentId)?.querySelector("[data-role=comment-like] button");
      if (button) button.disabled = true;
    }
  };
  const settled = (write, outcome) => {
    if (settleReaction(write, outcome)) return;
    if (write.kind === "like") {
      const row = rowOf(write.meta.commentId);
      if (row) likeSettled(row, outcome);
    } else if (write.kind === "comment") {
      const pending = pendingElement(write.key);
      if (!pending) return;
      pending.remove();
      if (outcome.ok) addComment(outcome.body);
      else showToast(`Comment not posted: ${outcome.body?.error?.message ?? outcome.status}`);
    }
  };
  pendingWrites().then((writes) => writes.forEach(showPending))
    .then(showPendingReactions).finally(() => startOutbox(page.viewerId, settled));

  return {
    reactions: react,
    "comment-like": (form) => likeComment(form, showPending),
    async "comment-form"(form) {
      const content = contentOf(form);
      if (!content) return false;
      const { pending, write, outcome } = await submit({
        method: "POST", path: `/api/posts/${page.postId}/comments`, body: { content },
        kind: "comment", meta: { postId: page.postId, content } });
      if (pending) showPending(write);
      else if (!outcome.ok) return false;
      else addComment(outcome.body);
      form.reset();
      return true;
    },
  };
}

/** Return a row for a comment still waiting to be sent: no id yet, nothing to click. */
function pendingComment(write, page) {
  const author = { id: page.viewerId, username: page.viewerUsername, display_name: "You" };
  const row = renderComment({ id: "pending", author, content: write.meta.content,
    created_at: write.at, like_count: 0 }, page.viewerId, page.postAuthorId);
  row.removeAttribute("data-comment-id");
  row.removeAttribute("id");
  row.querySelector(".comment-actions")?.remove();
  return markPending(row, write.key);
}

/** Change the shown comment count by *delta* (the list may show only the first page). */
function countBy(postId, comments, delta) {
  const card = cardOf(postId);
  const shown = card?.querySelector("[data-field=comment_count]");
  if (shown) {
    const count = Math.max(0, Number(shown.textContent) + delta);
    setCommentCount(card, count);
    // Feed cards get no comment events: this viewer's feed tabs learn the count from here.
    shareCommentCount(postId, count);
  }
  document.querySelector("[data-role=no-comments]").hidden = comments.children.length > 0;
}

function rowOf(id) {
  return document.querySelector(`[data-comment-id="${CSS.escape(id)}"]`);
}

function postGone() {
  const form = document.querySelector("[data-role=comment-form]");
  form?.querySelectorAll("textarea, button").forEach((node) => { node.disabled = true; });
  form?.insertAdjacentHTML("beforebegin", '<p class="flash" role="alert">This post was deleted.</p>');
}

/** Like or unlike a comment through the outbox; *showPending(write)* when it has to wait. */
async function likeComment(form, showPending) {
  const row = form.closest("[data-comment-id]");
  const liked = form.querySelector("button").getAttribute("aria-pressed") === "true";
  const commentId = row.dataset.commentId;
  const { pending, write, outcome } = await submit({
    method: liked ? "DELETE" : "PUT", path: `/api/comments/${commentId}/like`, kind: "like",
    meta: { commentId } });
  if (pending) showPending(write);
  else if (!outcome.ok) return false;
  else likeSettled(row, outcome);
  return true;
}

function likeSettled(row, outcome) {
  const button = row.querySelector("[data-role=comment-like] button");
  if (button) button.disabled = false;
  if (!outcome.ok) return;
  setLikeCount(row, outcome.body.like_count);
  setLiked(row, outcome.body.liked);
}

/** Return the typing indicator: names shown for a few seconds, the element empty otherwise. */
function typingIndicator(element) {
  const typists = new Map();  // user id -> {name, timer}
  const render = () => {
    const names = [...typists.values()].map((t) => t.name);
    element.textContent = names.length === 0 ? ""
      : `${names.join(" and ")} ${names.length === 1 ? "is" : "are"} typing…`;
  };
  return {
    show(user) {
      clearTimeout(typists.get(user.id)?.timer);
      const timer = setTimeout(() => { typists.delete(user.id); render(); }, TYPING_SHOWN_MS);
      typists.set(user.id, { name: nameWithHandle(user), timer });
      render();
    },
    clear(userId) {
      clearTimeout(typists.get(userId)?.timer);
      if (typists.delete(userId)) render();
    },
  };
}

/** Tell the post's readers that the viewer is typing, at most once every few seconds. */
function announceTyping(postId) {
  const form = document.querySelector("[data-role=comment-form]");
  const box = form?.querySelector("textarea[name=content]");
  let last = 0;
  // A sent comment ends the typing: the next keystroke starts a new announcement.
  form?.addEventListener("reset", () => { last = 0; });
  box?.addEventListener("input", () => {
    const now = Date.now();
    if (now - last < TYPING_SEND_MS || !box.value.trim()) return;
    last = now;
    api("POST", `/api/posts/${postId}/typing`).catch(() => {});
  });
}

/** Refetch the post and its comments after resync_required. */
async function reload(page, comments) {
  const [post, list] = await Promise.all([
    api("GET", `/api/posts/${page.postId}`),
    api("GET", `/api/posts/${page.postId}/comments?limit=${COMMENT_PAGE_SIZE}`),
  ]);
  if (post.status === 404) return postGone();
  if (!post.ok || !list.ok) return;
  const card = cardOf(page.postId);
  if (card) updatePost(card, await post.json());
  const liked = new Set([...comments.querySelectorAll("[data-comment-id]")]
    .filter((row) => row.querySelector("[aria-pressed=true]")).map((row) => row.dataset.commentId));
  const rows = (await list.json()).comments.map((comment) => {
    const row = renderComment(comment, page.viewerId, page.postAuthorId);
    setLiked(row, liked.has(comment.id));
    return row;
  });
  comments.replaceChildren(...rows);
  countBy(page.postId, comments, 0);
}
