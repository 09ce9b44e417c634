// Posts and comments rendered from JSON with the server's own markup: the page ships blank
// rows (script[data-template]) that are cloned and filled, so the two never drift apart.
import { humanize } from "./times.js";

const AVATAR_HUES = 12;  // app.css has a colour for each; the server's avatar_hue agrees

/** Return the colour slot (0–11) of *username*: FNV-1a over its lower-case bytes. */
export function avatarHue(username) {
  let hash = 0x811c9dc5;
  for (const byte of new TextEncoder().encode(username.toLowerCase())) {
    hash = Math.imul(hash ^ byte, 0x01000193) >>> 0;
  }
  return hash % AVATAR_HUES;
}

/** Return up to two initials of a display name (the server's `initials` filter agrees). */
export function initials(displayName, username = "") {
  const words = displayName.trim().split(/\s+/).filter(Boolean);
  const letters = words.slice(0, 2).map((word) => Array.from(word)[0]).join("");
  return (letters || Array.from(username)[0] || "?").toUpperCase();
}

/** Format an ISO time as "2026-01-02 15:04 UTC", as the server's `when` filter does. */
export function formatTime(iso) {
  return iso ? `${iso.slice(0, 10)} ${iso.slice(11, 16)} UTC` : "";
}

function clone(name, id, username) {
  const source = document.querySelector(`script[data-template="${name}"]`);
  if (!source) return null;
  // Ids are UUIDs and usernames [A-Za-z0-9_]: safe to place in the markup as they are.
  const html = JSON.parse(source.textContent)
    .replaceAll("__ID__", id).replaceAll("__USERNAME__", username);
  const template = document.createElement("template");
  template.innerHTML = html;
  return template.content.firstElementChild;
}

/**
 * Return how a notice names *user*: the display name, then the unique @username. Display
 * names are free text (two people may pick the same one), so a notice never shows one alone.
 */
export function nameWithHandle(user) {
  return `${user.display_name} (@${user.username})`;
}

function setField(root, name, text) {
  for (const node of root.querySelectorAll(`[data-field="${name}"]`)) node.textContent = text;
}

function fillAuthor(element, author, createdAt) {
  element.dataset.authorId = author.id;
  setField(element, "author", author.display_name);
  setField(element, "handle", `@${author.username}`);
  const avatar = element.querySelector("[data-field=avatar]");
  if (avatar) {
    avatar.dataset.hue = String(avatarHue(author.username));
    avatar.textContent = initials(author.display_name, author.username);
  }
  const time = element.querySelector("[data-field=created]");
  time.dateTime = createdAt;
  time.textContent = formatTime(createdAt);
  humanize(time);
}

/** Return a new post card for *post*; edit and delete only for the viewer's own. */
export function renderPost(post, viewerId) {
  const card = clone("post", post.id, post.author.username);
  if (!card) return null;
  if (post.author.id !== viewerId) card.querySelectorAll("[data-owner-only]").forEach((n) => n.remove());
  fillAuthor(card, post.author, post.created_at);
  updatePost(card, post);
  return card;
}

/** Apply *post* (a contract Post) to its card: content, edited mark, counts. */
export function updatePost(card, post) {
  setField(card, "content", post.content);
  card.querySelector("[data-field=edited]").hidden = post.updated_at === post.created_at;
  const editor = card.querySelector("[data-role=edit] textarea");
  if (editor && document.activeElement !== editor) editor.value = post.content;
  setReactionCounts(card, post.reaction_counts);
  setCommentCount(card, post.comment_count);
  if ("my_reaction" in post) setMyReaction(card, post.my_reaction);
}

/** Show *counts* ({like: n, …}) on a post card. */
export function setReactionCounts(card, counts) {
  for (const node of card.querySelectorAll("[data-reaction-count]")) {
    node.textContent = String(counts[node.dataset.reactionCount] ?? 0);
  }
}

/** Mark the viewer's reaction (or none) on a post card. */
export function setMyReaction(card, type) {
  for (const button of card.querySelectorAll("[data-role=reactions] button[name=type]")) {
    button.setAttribute("aria-pressed", String(button.value === type));
  }
}

/** Show a post's comment count. */
export function setCommentCount(card, count) {
  setField(card, "comment_count", String(count));
  setField(card, "comment_noun", count === 1 ? "comment" : "comments");
}

/** Return a new comment row; delete for its author and the post's author. */
export function renderComment(comment, viewerId, postAuthorId) {
  const row = clone("comment", comment.id, comment.author.username);
  if (!row) return null;
  if (viewerId !== comment.author.id && viewerId !== postAuthorId) {
    row.querySelectorAll("[data-owner-only]").forEach((n) => n.remove());
  }
  fillAuthor(row, comment.author, comment.created_at);
  setField(row, "content", comment.content);
  setLikeCount(row, comment.like_count);
  return row;
}

/** Show a comment's like count. */
export function setLikeCount(row, count) {
  for (const node of row.querySelectorAll("[data-like-count]")) node.textContent = String(count);
}

/** Mark whether the viewer likes a comment, and what its form will do next. */
export function setLiked(row, liked) {
  const form = row.querySelector("[data-role=comment-like]");
  form.querySelector("button").setAttribute("aria-pressed", String(liked));
  form.querySelector("input[name=liked]").value = liked ? "0" : "1";
}

/** Insert *element* at the top (or bottom) of *list* with the slide-in animation. */
export function insert(list, element, { atTop = true } = {}) {
  element.classList.add("arrived");
  if (atTop) list.prepend(element);
  else list.append(element);
}
