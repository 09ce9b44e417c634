// Forms work without JavaScript (they post to page routes and redirect). With it, the
// frequent ones go through the JSON API instead, so the page and its live connection stay;
// when the API refuses the write, the form is submitted the ordinary way (and shows why).
// Writes that get no answer at all wait in the outbox (outbox.js) and show as pending.
import { csrfToken } from "./session.js";

/**
 * Enhance the page's forms. *handlers* maps a form's data-role to
 * `async (form, submitter) => boolean`: true when it handled the submit.
 */
export function enhanceForms(handlers) {
  document.addEventListener("submit", async (event) => {
    const form = event.target;
    refreshCsrfField(form);
    const handler = handlers[form.dataset.role];
    if (!handler || form.dataset.native) return;
    event.preventDefault();
    const submitter = event.submitter;
    let handled = false;
    form.setAttribute("aria-busy", "true");
    try {
      handled = await handler(form, submitter);
    } catch {
      handled = false;
    } finally {
      form.removeAttribute("aria-busy");
    }
    if (!handled) {
      form.dataset.native = "1";
      form.requestSubmit(submitter);
    }
  });
}

/** Put the current CSRF token in the form: a session refresh replaces the cookie's value. */
function refreshCsrfField(form) {
  const field = form.querySelector("input[name=csrf_token]");
  const current = csrfToken();
  if (field && current) field.value = current;
}

/** Return the trimmed-or-not text of a form's content box, or "" when it is blank. */
export function contentOf(form) {
  const content = form.querySelector("textarea[name=content]").value;
  return content.trim() ? content : "";
}

/** Mark *element* as a write still waiting to be sent, with a note saying so. */
export function markPending(element, key, note = "Pending: sends when you are back online") {
  element.dataset.outboxKey = key;
  element.classList.add("pending");
  const label = document.createElement("p");
  label.className = "pending-note";
  label.textContent = note;
  element.append(label);
  return element;
}

/** Return the element of this page that shows queued write *key*, or null. */
export function pendingElement(key) {
  return document.querySelector(`[data-outbox-key="${CSS.escape(key)}"]`);
}
