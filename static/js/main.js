// The one entry point of every page: reads what the page says about itself (<body data-*>),
// keeps the session fresh, opens the page's live channel and wires its updates.
import { sharedConnection, viewerTabs } from "./client/shared.js";
import { TRANSPORTS } from "./client/connection.js";
import { startBadge } from "./badge.js";
import { enhanceForms } from "./forms.js";
import { showConnection } from "./indicator.js";
import { setUpNotifyButton } from "./notify.js";
import { setUpPush } from "./push.js";
import { resumeSession, scheduleRefresh } from "./session.js";
import { keepTimesCurrent } from "./times.js";
import { startConsole } from "./pages/console.js";
import { startPostPage } from "./pages/post.js";
import { linkTabs, startPostList } from "./pages/posts.js";

const page = document.body.dataset;
const forced = new URLSearchParams(location.search).get("transport");

/** Open this page's channel, shared with the other tabs that show it. */
function openLive() {
  // Not data-post-id on <body>: that attribute marks rendered posts (a contract hook).
  const channel = { kind: page.channel, postId: page.channelPostId };
  const transport = TRANSPORTS.includes(forced) ? forced : "";
  const key = [page.viewerId, page.channel, page.channelPostId ?? "", transport].join(":");
  const live = sharedConnection(key, channel, {
    forced: transport, lastEventId: page.lastEventId ?? "", pingSeconds: Number(page.pingSeconds) || 15,
  });
  live.addEventListener("state", ({ detail }) => showConnection(detail.state, detail.transport));
  live.addEventListener("signedout", () => showConnection("offline", null, "Signed out: sign in again"));
  return live;
}

async function start() {
  keepTimesCurrent();
  // A page rendered signed out may belong to a session whose access cookie expired: renew it
  // and load the page again, with a GET: reload() would post again a form this page answered.
  // ("unchecked" pages answer a refused form: nothing to renew there.)
  if ((page.session === "none" || page.session === "expired") && await resumeSession()) {
    return location.replace(location.href);
  }
  if (page.session === "active") {
    scheduleRefresh(Number(page.sessionExpires));
    setUpNotifyButton();
  }
  if (page.page === "realtime") return startConsole();
  if (page.session !== "active") return enhanceForms({});
  const badge = { viewerId: page.viewerId, forced, pingSeconds: Number(page.pingSeconds) || 15 };
  if (page.page === "notifications") setUpPush();
  if (!page.channel) {
    // The badge's feed stream is this page's only one: the indicator shows it.
    const feed = startBadge(null, badge);
    feed?.addEventListener("state", ({ detail }) => showConnection(detail.state, detail.transport));
    return enhanceForms({});
  }
  const live = openLive();
  startBadge(page.channel === "feed" ? live : null, badge);
  const viewerId = page.viewerId;
  linkTabs(viewerTabs(viewerId));
  if (page.page === "post") {
    enhanceForms(startPostPage(live, {
      viewerId, viewerUsername: page.viewerUsername, postId: page.channelPostId, postAuthorId: page.postAuthorId,
    }));
  } else {
    enhanceForms(startPostList(live, {
      viewerId, viewerUsername: page.viewerUsername, profileId: page.profileId, profileUsername: page.profileUsername,
    }));
  }
}

start();
