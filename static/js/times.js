// Times as a reader wants them: "2 minutes ago", kept current, in their own time zone, with
// the exact local time on hover. The server writes UTC ("2026-11-29 08:20 UTC") in each
// <time datetime>, which stays as it is without JavaScript.
const REFRESH_MS = 15_000;
const STEPS = [  // [unit, seconds in it, until this many seconds it is the unit to use]
  ["second", 1, 60], ["minute", 60, 3600], ["hour", 3600, 86400], ["day", 86400, 7 * 86400],
];

const relative = new Intl.RelativeTimeFormat(undefined, { numeric: "auto" });
// dateStyle/timeStyle cannot be combined with timeZoneName: the fields are spelled out.
const exact = new Intl.DateTimeFormat(undefined, {
  year: "numeric", month: "short", day: "numeric", hour: "numeric", minute: "2-digit",
  timeZoneName: "short" });
const dateOnly = new Intl.DateTimeFormat(undefined, { dateStyle: "medium" });

/** Return how long ago *date* was, in words ("2 minutes ago", "yesterday"); a date when older. */
export function ago(date, now = Date.now()) {
  const seconds = Math.round((date.getTime() - now) / 1000);  // negative: in the past
  if (Math.abs(seconds) < 10) return relative.format(0, "second");  // "now"
  for (const [unit, size, until] of STEPS) {
    if (Math.abs(seconds) < until) return relative.format(Math.round(seconds / size), unit);
  }
  return dateOnly.format(date);
}

/** Show one <time datetime> in the reader's terms. */
export function humanize(time) {
  const date = new Date(time.dateTime);
  if (Number.isNaN(date.getTime())) return;
  time.textContent = ago(date);
  time.title = exact.format(date);
}

/** Humanize every time on the page now, and again every few seconds, so "now" grows old. */
export function keepTimesCurrent() {
  const refresh = () => document.querySelectorAll("main time[datetime]").forEach(humanize);
  refresh();
  setInterval(refresh, REFRESH_MS);
}
