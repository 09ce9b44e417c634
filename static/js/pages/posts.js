// Post cards on the feed and profile pages: live events, reactions, the composer, load more.
import { api } from "../session.js";
import { showToast } from "../toasts.js";
import { notifyNewPost } from "../notify.js";
import { insert, nameWithHandle, renderPost, setCommentCount, setMyReaction, setReactionCounts, updatePost } from "../render.js";
import { sendContent } from "../forms.js";

const PAGE_SIZE = 20;

/** Return the card of post *id* on this page, or null. */
export function cardOf(id) {
  return document.querySelector(`[data-post-id="${CSS.escape(id)}"]`);
}

/** Apply a post event (post_updated, post_deleted, post_reaction) to the card it is about. */
export function applyPostEvent(event) {
  const card = cardOf(event.post?.id ?? event.post_id);
  if (!card) return;
  if (event.type === "post_updated") updatePost(card, event.post);
  else if (event.type === "post_reaction") setReactionCounts(card, event.reaction_data.counts);
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

/** Toggle the viewer's reaction through the API; the answer carries the new counts. */
export async function react(form, submitter) {
  const card = form.closest("[data-post-id]");
  if (!submitter || !card) return false;
  const undo = submitter.getAttribute("aria-pressed") === "true";
  const path = `/api/posts/${card.dataset.postId}/reaction`;
  const response = await api(undo ? "DELETE" : "PUT", path, undo ? undefined : { type: submitter.value });
  if (!response.ok) return false;
  const { reaction_data: data } = await response.json();
  setReactionCounts(card, data.counts);
  setMyReaction(card, undo ? null : submitter.value);
  tabs?.tell("own-reaction", { postId: card.dataset.postId, type: undo ? null : submitter.value,
    counts: data.counts });
  return true;
}

/**
 * Run a list of posts: *page* is {viewerId, profileId?, profileUsername?}. Returns the
 * form handlers for the composer and reactions.
 */
export function startPostList(live, page) {
  const list = document.querySelector("[data-role=posts]");
  const empty = document.querySelector("[data-role=empty]");
  const showsTop = list.dataset.liveInsert === "true";
  const belongs = (post) => !page.profileId || post.author.id === page.profileId;

  const add = (post, { fromOthers }) => {
    if (cardOf(post.id)) return applyPostEvent({ type: "post_updated", post });
    if (!showsTop || !belongs(post)) return;
    const card = renderPost(post, page.viewerId);
    if (!card) return;
    insert(list, card);
    empty.hidden = true;
    if (fromOthers && post.author.id !== page.viewerId) {
      showToast(`${nameWithHandle(post.author)} posted: “${post.content.slice(0, 80)}”`, `/post/${post.id}`);
      notifyNewPost(post);
    }
  };

  live.addEventListener("event", ({ detail: event }) => {
    if (event.type === "new_post") add(event.post, { fromOthers: true });
    else applyPostEvent(event);
  });
  live.addEventListener("resync", () => reload(list, page, showsTop));
  setUpLoadMore(list, page);

  return {
    reactions: react,
    async composer(form) {
      const post = await sendContent(form, "POST", "/api/posts");
      if (!post) return false;
      form.reset();
      add(post, { fromOthers: false });
      return true;
    },
  };
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
