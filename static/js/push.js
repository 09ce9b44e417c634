// "Enable notifications" on the notifications page: subscribes this browser to Web Push, so
// that notifications reach it while no page of the site is open. Permission is asked only
// when the button is clicked; the service worker (/sw.js) shows the pushes.
import { api } from "./session.js";

/** Return a base64url string as bytes (PushManager takes the VAPID key so everywhere). */
function bytesOf(base64url) {
  const base64 = base64url.replace(/-/g, "+").replace(/_/g, "/");
  const binary = atob(base64 + "=".repeat((4 - (base64.length % 4)) % 4));
  return Uint8Array.from(binary, (char) => char.charCodeAt(0));
}

/** Register the service worker and wire the enable/disable button, where pushes work. */
export async function setUpPush() {
  const row = document.querySelector("[data-role=push]");
  if (!row || !("serviceWorker" in navigator) || !("PushManager" in window)
      || !("Notification" in window)) return;
  const button = row.querySelector("[data-role=push-toggle]");
  const status = row.querySelector("[data-role=push-status]");
  const registration = await navigator.serviceWorker.register("/sw.js");
  let subscription = await registration.pushManager.getSubscription();
  if (subscription && Notification.permission === "granted") {
    // The server may have dropped it (its push service said gone): idempotent per endpoint.
    api("POST", "/api/push/subscriptions", subscription.toJSON());
  }
  const render = (message = "") => {
    button.textContent = subscription ? "Disable notifications" : "Enable notifications";
    status.textContent = message || (subscription ? "On in this browser." : "");
  };
  render();
  row.hidden = false;

  button.addEventListener("click", async () => {
    button.disabled = true;
    let message = "";
    try {
      if (subscription) {
        await api("DELETE", "/api/push/subscriptions", { endpoint: subscription.endpoint });
        await subscription.unsubscribe();
        subscription = null;
      } else if (await Notification.requestPermission() !== "granted") {
        message = "Notifications are blocked: allow them in the browser's site settings.";
      } else {
        const key = (await (await api("GET", "/api/push/public-key")).json()).public_key;
        subscription = await registration.pushManager.subscribe({
          userVisibleOnly: true, applicationServerKey: bytesOf(key),
        });
        const response = await api("POST", "/api/push/subscriptions", subscription.toJSON());
        if (!response.ok) throw new Error(`the server answered ${response.status}`);
      }
    } catch (error) {
      message = `Could not change notifications: ${error.message}`;
    } finally {
      button.disabled = false;
      render(message);
    }
  });
}
