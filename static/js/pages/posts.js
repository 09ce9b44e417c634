// Post cards on the feed and profile pages: live events, reactions, the composer, load more.
import { api } from "../session.js";
import { showToast } from "../toasts.js";
import { notifyNewPost } from "../notify.js";
import { insert, nameWithHandle, renderPost, setCommentCount, setMyReaction, setReactionCounts, updatePost } from "../render.js";
import { contentOf, markPending, pendingElement } from "../forms.js";
import { pendingWrites, startOutbox, submit } from "../outbox.js";

const PAGE_SIZE = 20;

/** Return the card of post *id* on this page, or null. */
export function cardOf(id) {
  return document.querySelector(`[data-post-id="${CSS.escape(id)}"]`);
}

/**
 * Apply a post event (post_updated, post_deleted, post_reaction, comment_count) to the card it
 * is about.
 */
export function applyPostEvent(event) {
  const card = cardOf(event.post?.id ?? event.post_id);
  if (!card) return;
  if (event.type === "post_updated") updatePost(card, event.post);
  else if (event.type === "post_reaction") setReactionCounts(card, event.reaction_data.counts);
  else if (event.type === "comment_count") setCommentCount(card, event.comment_count);
  else if (event.type === "post_deleted") {
    card.classList.add("removed");
    setTimeout(() => card.remove(), 300);
  }
}

// The viewer's other tabs (see viewerTabs in client/shared.js), once linkTabs() is called.
let tabs = null;

/**
 * Show in this tab what the viewer did in another: their pressed reaction (no event says
 * it), and a post's comment count as a tab showing that post saw it change.
 */
export function linkTabs(viewerTabs) {
  tabs = viewerTabs;
  tabs.addEventListener("own-reaction", ({ detail }) => {
    const card = cardOf(detail.postId);
    if (!card) return;
    setReactionCounts(card, detail.counts);
    setMyReaction(card, detail.type);
  });
  tabs.addEventListener("comment-count", ({ detail }) => {
    const card = cardOf(detail.postId);
    if (card) setCommentCount(card, detail.count);
  });
}

/** Tell the viewer's other tabs that post *postId* now has *count* comments. */
export function shareCommentCount(postId, count) {
  tabs?.tell("comment-count", { postId, count });
}

/** Toggle the viewer's reaction through the outbox; the answer carries the new counts. */
export async function react(form, submitter) {
  const card = form.closest("[data-post-id]");
  if (!submitter || !card) return false;
  const undo = submitter.getAttribute("aria-pressed") === "true";
  const type = undo ? null : submitter.value;
  const { pending, outcome } = await submit({
    method: undo ? "DELETE" : "PUT", path: `/api/posts/${card.dataset.postId}/reaction`,
    body: undo ? undefined : { type }, kind: "reaction", meta: { postId: card.dataset.postId, type },
  });
  if (pending) {
    showReactionPending(card, type);
    return true;
  }
  if (!outcome.ok) return false;
  reactionSettled(card, type, outcome);
  return true;
}

/** Show the viewer's choice on a card while it waits to be sent; the buttons wait too. */
function showReactionPending(card, type) {
  setMyReaction(card, type);
  card.dataset.reactionPending = "true";
  for (const button of card.querySelectorAll("[data-role=reactions] button")) button.disabled = true;
}

/** Apply the answer of a reaction write (sent now or later) to its card. */
function reactionSettled(card, type, outcome) {
  delete card.dataset.reactionPending;
  for (const button of card.querySelectorAll("[data-role=reactions] button")) button.disabled = false;
  if (!outcome.ok) return showToast(`Reaction not saved: ${outcome.body?.error?.message ?? outcome.status}`);
  setReactionCounts(card, outcome.body.reaction_data.counts);
  setMyReaction(card, type);
  tabs?.tell("own-reaction", { postId: card.dataset.postId, type,
    counts: outcome.body.reaction_data.counts });
}

/** Settle a queued reaction on this page (null when the write is not a reaction). */
export function settleReaction(write, outcome) {
  if (write.kind !== "reaction") return null;
  const card = cardOf(write.meta.postId);
  if (card) reactionSettled(card, write.meta.type, outcome);
  return card;
}

/** Show the reactions of this page's cards still waiting in the outbox. */
export async function showPendingReactions() {
  for (const write of await pendingWrites()) {
    const card = write.kind === "reaction" && cardOf(write.meta.postId);
    if (card) showReactionPending(card, write.meta.type);
  }
}

/** Return a card for a post still waiting to be sent: no id yet, nothing to click. */
function pendingCard(write, page) {
  const author = { id: page.viewerId, username: page.viewerUsername, display_name: "You" };
  const counts = Object.fromEntries(["like", "love", "haha", "wow", "sad", "angry"].map((t) => [t, 0]));
  const card = renderPost({ id: "pending", author, content: write.meta.content, created_at: write.at,
    updated_at: write.at, reaction_counts: counts, comment_count: 0 }, page.viewerId);
  if (!card) return null;
  card.removeAttribute("data-post-id");
  card.removeAttribute("id");
  card.querySelector("a.permalink")?.replaceWith(...card.querySelector("a.permalink").childNodes);
  card.querySelectorAll("[data-role=reactions], footer").forEach((node) => node.remove());
  return markPending(card, write.key);
}

/**
 * Run a list of posts: *page* is {viewerId, viewerUsername, profileId?, profileUsername?}.
 * Returns the form handlers for the composer and reactions.
 */
export function startPostList(live, page) {
  const list = document.querySelector("[data-role=posts]");
  const empty = document.querySelector("[data-role=empty]");
  const showsTop = list.dataset.liveInsert === "true";
  const belongs = (post) => !page.profileId || post.author.id === page.profileId;
  const fresh = newPostsPill(list, (card) => { insert(list, card); empty.hidden = true; });

  const add = (post, { fromOthers }) => {
    if (cardOf(post.id)) return applyPostEvent({ type: "post_updated", post });
    if (!showsTop || !belongs(post)) return;
    const card = renderPost(post, page.viewerId);
    if (!card) return;
    if (fromOthers) fresh.arrived(card);
    else {
      fresh.showAll();  // one's own post goes to the top, with whatever came before it
      insert(list, card);
    }
    empty.hidden = true;
    if (fromOthers && post.author.id !== page.viewerId) {
      showToast(`${nameWithHandle(post.author)} posted: “${post.content.slice(0, 80)}”`, `/post/${post.id}`);
      notifyNewPost(post);
    }
  };
  const showPending = (write) => {
    const card = write.kind === "post" && showsTop && !page.profileId && pendingCard(write, page);
    if (!card) return;
    insert(list, card);
    empty.hidden = true;
  };
  const settled = (write, outcome) => {
    if (settleReaction(write, outcome) || write.kind !== "post") return;
    const card = pendingElement(write.key);
    if (!card) return;
    card.remove();
    if (outcome.ok) add(outcome.body, { fromOthers: false });
    else showToast(`Not posted: ${outcome.body?.error?.message ?? outcome.status}`);
  };

  live.addEventListener("event", ({ detail: event }) => {
    if (event.type === "new_post") add(event.post, { fromOthers: true });
    else applyPostEvent(event);
  });
  live.addEventListener("resync", () => reload(list, page, showsTop));
  setUpLoadMore(list, page);
  // What waits in the outbox shows first, so the answers that come now find it.
  pendingWrites().then((writes) => writes.forEach(showPending))
    .then(showPendingReactions).finally(() => startOutbox(page.viewerId, settled));

  return {
    reactions: react,
    async composer(form) {
      const content = contentOf(form);
      if (!content) return false;
      const { pending, write, outcome } = await submit({
        method: "POST", path: "/api/posts", body: { content }, kind: "post", meta: { content } });
      if (pending) showPending(write);
      else if (!outcome.ok) return false;
      else add(outcome.body, { fromOthers: false });
      form.reset();
      return true;
    },
  };
}

/**
 * The "N new posts" pill: posts that arrive while the reader is scrolled down wait behind
 * it instead of pushing what they read down the page; a reader at the top sees them at once.
 * Returns {arrived(card), showAll()}.
 */
function newPostsPill(list, place) {
  const waiting = [];
  const pill = document.createElement("button");
  pill.type = "button";
  pill.className = "new-posts";
  pill.dataset.role = "new-posts";
  pill.hidden = true;
  list.before(pill);
  const showAll = () => {
    for (const card of waiting.splice(0)) place(card);
    pill.hidden = true;
  };
  pill.addEventListener("click", () => {
    showAll();
    list.scrollIntoView({ block: "start" });
    window.scrollBy(0, -80);  // and the pill's own line above it
  });
  return {
    showAll,
    arrived(card) {
      if (waiting.some((other) => other.dataset.postId === card.dataset.postId)) return;
      if (readerAtTop()) return place(card);
      waiting.push(card);
      pill.textContent = `${waiting.length} new ${waiting.length === 1 ? "post" : "posts"} ↑`;
      pill.hidden = false;
    },
  };
}

/** Whether the reader is at the top of the page, where a new post moves nothing they read. */
function readerAtTop() {
  return window.scrollY < 40;
}

function listPath(page, before) {
  const query = new URLSearchParams({ limit: String(PAGE_SIZE) });
  if (before) query.set("before", before);
  const base = page.profileUsername ? `/api/users/${page.profileUsername}/posts` : "/api/feed";
  return `${base}?${query}`;
}

/** Refetch the first page after resync_required, replacing what the list shows. */
async function reload(list, page, showsTop) {
  if (!showsTop) return;  // an older page (?before=) has nothing live to catch up on
  const response = await api("GET", listPath(page));
  if (!response.ok) return;
  const { posts, next_before: next } = await response.json();
  list.replaceChildren(...posts.map((post) => renderPost(post, page.viewerId)));
  document.querySelector("[data-role=empty]").hidden = posts.length > 0;
  const more = document.querySelector("[data-role=load-more]");
  if (more) showNext(more, next);
}

function showNext(more, next) {
  more.dataset.nextBefore = next ?? "";
  more.search = next ? `?before=${encodeURIComponent(next)}` : "";
  more.hidden = !next;
}

/** "Load more" appends the next page from the API instead of navigating (?before=). */
function setUpLoadMore(list, page) {
  const more = document.querySelector("[data-role=load-more]");
  more?.addEventListener("click", async (event) => {
    event.preventDefault();
    const response = await api("GET", listPath(page, more.dataset.nextBefore));
    if (!response.ok) return location.assign(more.href);
    const { posts, next_before: next } = await response.json();
    for (const post of posts) {
      if (!cardOf(post.id)) list.append(renderPost(post, page.viewerId));
    }
    showNext(more, next);
  });
}
