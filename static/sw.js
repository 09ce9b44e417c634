// The service worker: shows a Web Push notification while no page of the site is open (the
// server pushes only then), and opens the page it is about when clicked. Served from /sw.js,
// so its scope is the whole site.

self.addEventListener("install", () => self.skipWaiting());
self.addEventListener("activate", (event) => event.waitUntil(self.clients.claim()));

self.addEventListener("push", (event) => {
  let message = {};
  try {
    message = event.data ? event.data.json() : {};
  } catch {
    // Not ours to read: still show something, as browsers require of every push.
  }
  const title = message.title || "Realtime feed";
  event.waitUntil(self.registration.showNotification(title, {
    body: message.body || "You have a new notification",
    tag: message.tag,  // the same notification pushed twice shows once
    data: { url: message.url || "/notifications" },
  }));
});

self.addEventListener("notificationclick", (event) => {
  event.notification.close();
  const url = new URL(event.notification.data?.url || "/notifications", self.location.origin);
  if (url.origin !== self.location.origin) return;  // only ever this site's own pages
  event.waitUntil((async () => {
    const windows = await self.clients.matchAll({ type: "window", includeUncontrolled: true });
    const open = windows.find((client) => client.url === url.href);
    if (open) return open.focus();
    return self.clients.openWindow(url.href);
  })());
});
