// Browser notifications for new posts while the tab is hidden. Permission is asked only
// from the header button, never on load.
import { nameWithHandle } from "./render.js";

/** Show the "notify me" button while the person has not decided yet. */
export function setUpNotifyButton() {
  const button = document.querySelector("[data-role=notify]");
  if (!button || !("Notification" in window) || Notification.permission !== "default") return;
  button.hidden = false;
  button.addEventListener("click", async () => {
    await Notification.requestPermission();
    button.hidden = Notification.permission !== "default";  // decided: nothing left to ask
  });
}

/** Notify about *post* when this tab is hidden and notifications are allowed. */
export function notifyNewPost(post) {
  if (!document.hidden || !("Notification" in window) || Notification.permission !== "granted") return;
  const notification = new Notification(`${nameWithHandle(post.author)} posted`, {
    body: post.content.slice(0, 140),
    tag: `post-${post.id}`,  // several tabs of one person notify once
  });
  notification.onclick = () => { window.focus(); location.assign(`/post/${post.id}`); };
}
