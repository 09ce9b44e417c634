// Forms work without JavaScript (they post to page routes and redirect). With it, the
// frequent ones go through the JSON API instead, so the page and its live connection stay;
// when the API call fails for any reason, the form is submitted the ordinary way.
import { api, csrfToken } from "./session.js";

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

/** Send a form's content to the API as JSON; resolve to the answer's JSON, or null. */
export async function sendContent(form, method, path) {
  const content = form.querySelector("textarea[name=content]").value;
  if (!content.trim()) return null;
  const response = await api(method, path, { content });
  return response.ok ? response.json() : null;
}
