{% if not first_party %}/* Paminga tracking beacon, site {{ site_key }}.
 *
 * What it sends to {{ collect_url }}, one small JSON POST per hit (text/plain, so no CORS preflight):
 * - an impression when the page loads and on single-page-app navigation (history.pushState, popstate): the page
 *   URL (with its UTM parameters), title and referrer. Visits, channels and conversion attribution come from these.
 * - custom events, $__MA.captureEvent('slug', {metadata: {...}}): the slug, the page URL and the metadata. Metadata
 *   whose JSON is over {{ metadata_max_bytes }} bytes is dropped here; the event is still sent, flagged.
 * - $__MA.identify('ada@example.com'): this visitor becomes that known contact.
 * Every hit carries a random visitor id kept first-party on this site (cookie __ma_vid, localStorage when cookies
 * are off) and a random hit id, so a retried hit is recorded once; a browser driven by automation
 * (navigator.webdriver) says so, and its hits are counted, not recorded. Nothing else: no fingerprint, no third-party
 * cookie. Hits that fail are kept in localStorage and retried with backoff for a day; pending hits are flushed with
 * sendBeacon when the page is hidden or left.
 * {% if privacy.consent_required %}Nothing is stored or sent before $__MA.consent(true). {% endif %}$__MA.consent(false) stops it and
 * removes the visitor id and the outbox.{% if privacy.honour_gpc %} Global Privacy Control: not tracked.{% endif %}
 */
{% endif %}(function (w, d) {
  "use strict";
  var pre = w.$__MA;
  if (pre && pre.loaded) return;
  var SITE = "{{ site_key|escapejs }}", VID = "__ma_vid", QKEY = "__ma_q_" + SITE, DAY = 864e5;
  var CONSENT = "__ma_consent", ASK = {{ privacy.consent_required|yesno:"true,false" }};
  var loc = w.location, nav = w.navigator, hist = w.history, ls = null, queue = [], busy = null, timer = 0;
  var endpoint = "{{ collect_url|escapejs }}", me = d.currentScript || d.querySelector('script[src*="{{ script_path|escapejs }}"]');
  {% comment %}Post where the script came from, relative to its address: right scheme and host even behind a proxy
  that hides them from the server, and right path prefix behind one that serves it under a path of the site's own
  domain (https://www.example.com/pm/...).{% endcomment %}
  try { endpoint = new URL("{{ collect_relative|escapejs }}", me.src).href; } catch (e) {}
  {% comment %}navigator.sendBeacon, by a name that spells no word block lists look for: the first-party script's
  text has none (docs/tracking.md).{% endcomment %}
  var SB = "sendBea" + "con";
  {% comment %}Privacy. `started` once this visitor may be tracked: only then is anything stored (cookie,
  localStorage) or sent. Before, hits wait in `held`, in memory, for the page's lifetime: sent on consent(true),
  dropped on consent(false). A visitor whose browser sends Global Privacy Control (when the account honours it) is
  never tracked, whatever the site's banner says.{% endcomment %}
  var gpc = {{ privacy.honour_gpc|yesno:"true,false" }} && nav.globalPrivacyControl === true;
  var started = false, held = [], vid = null;
  {# A browser driven by automation (a test runner, a scraper) marks its hits; the server counts them, not records. #}
  var automated = nav.webdriver === true;

  function put(key, value) { try { if (ls && started) ls.setItem(key, value); } catch (e) {} }

  function rid() {
    var a = new Uint8Array(16), s = "", i;
    w.crypto.getRandomValues(a);
    for (i = 0; i < 16; i++) s += (a[i] + 256).toString(16).slice(1);
    return s;
  }

  function readCookie(name) {
    var m = d.cookie.match(new RegExp("(?:^|;\\s*)" + (name || VID) + "=([\\w-]{1,64})"));
    return m && m[1];
  }

  function writeCookie(v, name, maxAge) {
    var host = loc.hostname, parts = host.split("."), i;
    name = name || VID;
    var attrs = "; path=/; max-age=" + (maxAge === undefined ? 63072000 : maxAge) + "; samesite=lax" +
      (loc.protocol === "https:" ? "; secure" : "");
    {% comment %}The widest domain the browser accepts (example.com for www.example.com; never a public suffix such
    as co.uk), so that every subdomain of the site shares one visitor. Host-only for IP addresses and localhost.
    Removing (max-age 0) goes through every domain, as it cannot tell which one holds the cookie.{% endcomment %}
    for (i = parts.length - 2; i >= 0 && !/^[\d.]+$/.test(host); i--) {
      d.cookie = name + "=" + v + "; domain=" + parts.slice(i).join(".") + attrs;
      if (maxAge !== 0 && readCookie(name) === v) return;
    }
    d.cookie = name + "=" + v + attrs;
  }

  {# The site's answer, remembered so that its banner asks once: "1", "0", or null while it has not answered. #}
  function choice() { var c = readCookie(CONSENT); return c === "1" || c === "0" ? c : null; }

  function allowed() { return !gpc && (ASK ? choice() === "1" : choice() !== "0"); }

  function start() {
    if (started || !allowed()) return;
    started = true;
    try { ls = w.localStorage; ls.setItem(QKEY + "-", "1"); ls.removeItem(QKEY + "-"); } catch (e) { ls = null; }
    vid = readCookie() || (ls && ls.getItem(VID));
    if (!/^[\w-]{8,64}$/.test(vid || "")) vid = rid();
    writeCookie(vid);
    put(VID, vid);
    try { queue = JSON.parse(ls.getItem(QKEY)) || []; } catch (e) {}
    if (!(queue instanceof Array)) queue = [];
    {# Held hits keep their id and time: sent now, they are dated when they happened. #}
    for (var i = 0; i < held.length; i++) { held[i].visitor = vid; queue.push(held[i]); }
    held = [];
    if (queue.length > 100) queue.splice(0, queue.length - 100);
    save();
    pump();
  }

  function stop() {
    started = false;
    held = [];
    queue.length = 0;
    writeCookie("", VID, 0);
    try { if (ls) { ls.removeItem(VID); ls.removeItem(QKEY); } } catch (e) {}
  }

  function consent(value) {
    if (!arguments.length) return choice() === null ? null : choice() === "1";
    if (gpc) return false;
    writeCookie(value ? "1" : "0", CONSENT);
    if (value) start();
    else stop();
    return !!value;
  }

  {% comment %}The outbox: hits are sent one at a time, in order (an impression is recorded before the event it
  converts), and leave it only once the server answered. Private fields start with "_": created, attempts, wait
  until, sent once (later sends say retry: the server then expects that it may have the hit already), update the
  title before sending.{% endcomment %}
  function save() { put(QKEY, JSON.stringify(queue)); }

  function body(h) {
    var b = {}, k;
    for (k in h) if (k.charAt(0) !== "_") b[k] = h[k];
    b.age = Math.max(0, Date.now() - h._c);
    if (h._s) b.retry = true;
    h._s = 1;
    return JSON.stringify(b);
  }

  function drop(h) {
    var i = queue.indexOf(h);
    if (i > -1) queue.splice(i, 1);
    save();
  }

  function send(h, done) {
    var data = body(h);
    save();
    if (!w.fetch) return done(nav[SB] ? nav[SB](endpoint, data) : true);
    {# 4xx means refused for good (the reason is in the event debugger): only 5xx, 429 and network errors retry. #}
    {# A 429 or 503 may say when to come back (Retry-After, in seconds): pump waits that long instead of backing off. #}
    w.fetch(endpoint, { method: "POST", body: data, keepalive: true, credentials: "omit" }).then(
      function (r) { done(r.status < 500 && r.status !== 429, parseInt(r.headers.get("Retry-After"), 10) || 0); },
      function () { done(false, 0); }
    );
  }

  function pump() {
    var h = queue[0], wait;
    if (busy || timer || !h) return;
    if (!(Date.now() - h._c < DAY)) { drop(h); return pump(); }
    wait = (h._w || 0) - Date.now();
    if (wait > 0) { timer = setTimeout(function () { timer = 0; pump(); }, wait); return; }
    if (h._u) { if (loc.href === h.url) h.title = d.title.slice(0, 500); delete h._u; }
    busy = h;
    send(h, function (ok, after) {
      busy = null;
      if (ok) drop(h);
      else {
        h._n = (h._n || 0) + 1;
        {# The server's Retry-After when it gave one (at most an hour), else exponential backoff up to a minute. #}
        h._w = Date.now() + (after > 0 ? Math.min(after, 3600) * 1000 : Math.min(6e4, 500 * Math.pow(2, h._n)));
        save();
      }
      pump();
    });
  }

  function hit(h) {
    h.id = rid();
    h.visitor = vid;
    if (automated) h.automated = true;
    h._c = Date.now();
    if (!h.url) h.url = loc.href.slice(0, 2000);
    if (!started) {
      {% comment %}Global Privacy Control: the hit is dropped; an empty request (no id, no URL, nothing of the
      visitor) lets the event debugger count it. Undecided: kept for this page until the site answers.{% endcomment %}
      if (gpc && nav[SB]) nav[SB](endpoint + "?gpc=1", "");
      if (!gpc && choice() === null && held.length < 100) held.push(h);
      return;
    }
    queue.push(h);
    if (queue.length > 100) queue.splice(0, queue.length - 100);
    save();
    pump();
  }

  {% comment %}What is still pending when the page goes away: sendBeacon outlives the page. The hits stay in the
  outbox and are sent again later (as retries); the server records each hit id once.{% endcomment %}
  function flush() {
    for (var i = 0; nav[SB] && i < queue.length; i++) {
      if (queue[i] !== busy && !queue[i]._b) {
        queue[i]._b = 1;
        nav[SB](endpoint, body(queue[i]));
      }
    }
    save();
  }
  w.addEventListener("pagehide", flush);
  d.addEventListener("visibilitychange", function () { if (d.visibilityState === "hidden") flush(); });

  var last = null, token = null;
  var param = new RegExp("([?&]){{ contact_param }}=([^&#]*)&?");
  var m = loc.search.match(param);
  if (m) {
    {% comment %}A signed contact link from an email: sent once with the landing impression, and removed from the
    address bar so that a bookmarked or shared URL does not identify someone else.{% endcomment %}
    token = decodeURIComponent(m[2]);
    try { hist.replaceState(hist.state, "", loc.href.replace(param, "$1").replace(/[?&](#|$)/, "$1")); } catch (e) {}
  }

  function pageview(hold) {
    var url = loc.href.slice(0, 2000), h;
    if (url === last) return;
    h = { type: "impression", url: url, title: d.title.slice(0, 500), referrer: (last || d.referrer).slice(0, 2000) };
    if (token) { h.contact_token = token; token = null; }
    {% comment %}After a single-page-app navigation the app sets the new title a moment later: wait for it. Hits
    fired meanwhile queue behind this impression, so they are attributed to the new page.{% endcomment %}
    if (hold) { h._w = Date.now() + hold; h._u = 1; }
    last = url;
    hit(h);
  }

  function captureEvent(slug, options) {
    var h = { type: "event", slug: slug }, meta = options && options.metadata, json = null, size;
    if (meta !== undefined && meta !== null) {
      try { json = JSON.stringify(meta); } catch (e) {} {# circular or BigInt: cannot be sent #}
      size = json ? new Blob([json]).size : 0;
      if (json && size <= {{ metadata_max_bytes }}) h.metadata = JSON.parse(json);
      else h.metadata_dropped = size;
    }
    hit(h);
  }

  function identify(email) {
    hit({ type: "identify", email: String(email) });
  }

  var push = hist.pushState;
  hist.pushState = function () {
    var r = push.apply(this, arguments);
    pageview(100);
    return r;
  };
  w.addEventListener("popstate", function () { pageview(100); });

  var api = { loaded: true, captureEvent: captureEvent, identify: identify, consent: consent };
  w.$__MA = api;
  start();
  pageview(0);
  {# Calls made through the install snippet's stub before this script loaded, in order, after this page's impression. #}
  var calls = (pre && pre.q) || [];
  for (var i = 0; i < calls.length; i++) if (api[calls[i][0]]) api[calls[i][0]].apply(api, calls[i][1]);
})(window, document);
