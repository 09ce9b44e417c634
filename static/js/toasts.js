// Short notices in the [data-role=toasts] live region; each is role="status".
const TOAST_MS = 6000;

/** Show *text* for a few seconds; with *href*, the text links there. */
export function showToast(text, href) {
  const region = document.querySelector("[data-role=toasts]");
  if (!region) return;
  const toast = document.createElement("div");
  toast.className = "toast";
  toast.setAttribute("role", "status");
  if (href) {
    const link = document.createElement("a");
    link.href = href;
    link.textContent = text;
    toast.append(link);
  } else {
    toast.textContent = text;
  }
  region.append(toast);
  setTimeout(() => toast.remove(), TOAST_MS);
}
