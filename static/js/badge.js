// The header's unread-notifications badge, kept live by the `notification` event of the
// viewer's own feed. Pages whose live channel is the feed pass their connection; the others
// open the feed here (shared with the browser's other tabs, resuming from where the page was
// read). On the notifications page, new ones are added to the list and marked read.
import { sharedConnection } from "./client/shared.js";
import { TRANSPORTS } from "./client/connection.js";
import { nameWithHandle } from "./render.js";
import { api } from "./session.js";

const PHRASES = {
  follow: "started following you", comment: "commented on your post",
  reaction: "reacted to your post", comment_like: "liked your comment", mention: "mentioned you",
};

/** Return the page a notification leads to (as the server's links do). */
function linkOf(notification) {
  if (notification.type === "follow") return `/u/${notification.actor.username}`;
  const anchor = notification.comment_id ? `#comment-${notification.comment_id}` : "";
  return `/post/${notification.post_id}${anchor}`;
}

/** Put a notification that just came at the top of the notifications page's list. */
function addLine(notification) {
  const list = document.querySelector("[data-role=notifications]");
  if (!list) return;
  const item = document.createElement("li");
  item.className = "notification unread";
  item.dataset.type = notification.type;
  item.dataset.notificationIds = notification.id;
  const link = document.createElement("a");
  link.href = linkOf(notification);
  link.textContent = `${nameWithHandle(notification.actor)} ${PHRASES[notification.type]}`;
  const time = document.createElement("time");
  time.dateTime = notification.created_at;
  time.textContent = "just now";
  item.append(link, " ", time);
  list.prepend(item);
  document.querySelector("[data-role=no-notifications]")?.setAttribute("hidden", "");
}

/**
 * Keep the badge live. *live* is the page's feed connection, or null to open one; returns
 * the connection used (none when signed out).
 * @param {{viewerId: string, forced: string, pingSeconds: number}} options
 */
export function startBadge(live, { viewerId, forced, pingSeconds }) {
  const link = document.querySelector("[data-role=notifications-link]");
  if (!link) return null;
  const badge = link.querySelector("[data-role=unread-count]");
  const show = (unread) => {
    badge.textContent = String(unread);
    badge.hidden = !unread;
  };
  // Marking read in one tab updates the badge of the others.
  const tabs = window.BroadcastChannel ? new BroadcastChannel(`notifications:${viewerId}`) : null;
  if (tabs) tabs.onmessage = ({ data }) => show(data.unread);
  const onList = document.body.dataset.page === "notifications";
  if (onList) tabs?.postMessage({ unread: Number(badge.textContent) });  // these are read now

  const markRead = async (ids) => {
    const response = await api("POST", "/api/notifications/read", { ids });
    if (!response.ok) return;
    const { unread } = await response.json();
    show(unread);
    tabs?.postMessage({ unread });
  };
  const refetch = async () => {
    const response = await api("GET", "/api/notifications?limit=1");
    if (response.ok) show((await response.json()).unread);
  };
  if (!live) {
    const transport = TRANSPORTS.includes(forced) ? forced : "";
    live = sharedConnection([viewerId, "feed", "", transport].join(":"), { kind: "feed" }, {
      forced: transport, lastEventId: link.dataset.feedLastEventId ?? "", pingSeconds,
    });
  }
  live.addEventListener("resync", refetch);
  live.addEventListener("event", ({ detail: event }) => {
    if (event.type !== "notification") return;
    show(event.unread);
    if (onList && !document.querySelector(`[data-notification-ids~="${CSS.escape(event.notification.id)}"]`)) {
      addLine(event.notification);
      markRead([event.notification.id]);
    }
  });
  return live;
}
