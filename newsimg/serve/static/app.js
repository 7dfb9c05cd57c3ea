// The photo desk page: plain JavaScript, no build step, no network but this server.
// The whole view lives in the URL's query string, so a link reproduces it.
(function () {
  "use strict";
  var $ = function (id) { return document.getElementById(id); };
  var config = null;
  var state = {};            // what the URL holds
  var shortlist = [];        // [{key, score, rank, thumbnail}]
  var cards = [];            // result cards in page order, for the keyboard
  var selected = -1;

  // ---- the URL <-> the state ------------------------------------------------------------
  var FIELDS = ["view", "mode", "text", "headline", "lead", "url", "key", "article", "approach",
                "compare", "k", "offset", "dedup", "min", "orig", "sl"];

  function readUrl() {
    var q = new URLSearchParams(location.search), s = {};
    FIELDS.forEach(function (f) { if (q.has(f)) s[f] = q.get(f); });
    return s;
  }

  function writeUrl(replace) {
    var q = new URLSearchParams();
    FIELDS.forEach(function (f) {
      if (state[f] !== undefined && state[f] !== null && state[f] !== "") q.set(f, state[f]);
    });
    var url = location.pathname + (q.toString() ? "?" + q.toString() : "");
    if (url === location.pathname + location.search) return;
    (replace ? history.replaceState : history.pushState).call(history, null, "", url);
  }

  function formToState() {
    var mode = document.querySelector("input[name=mode]:checked").value;
    var s = { view: "search", mode: mode, approach: $("approach").value,
              k: $("k").value, dedup: $("dedup").checked ? "1" : "0",
              min: $("min-score").value, orig: $("originals").checked ? "1" : "0",
              compare: $("compare").checked ? "1" : "", sl: state.sl };
    if (mode === "text") s.text = $("q-text").value;
    if (mode === "article") { s.headline = $("q-headline").value; s.lead = $("q-lead").value; }
    if (mode === "url") s.url = $("q-url").value;
    return s;
  }

  function stateToForm() {
    var mode = state.mode || "text";
    if (state.key) mode = state.mode || "text";
    document.querySelector("input[name=mode][value=" + mode + "]").checked = true;
    showMode(mode);
    $("q-text").value = state.text || "";
    $("q-headline").value = state.headline || "";
    $("q-lead").value = state.lead || "";
    $("q-url").value = state.url || "";
    if (state.approach) $("approach").value = state.approach;
    $("k").value = state.k || config.k;
    $("dedup").checked = state.dedup === undefined ? config.dedup : state.dedup === "1";
    $("min-score").value = state.min || "";
    $("originals").checked = state.orig === undefined ? config.include_originals : state.orig === "1";
    $("compare").checked = state.compare === "1";
  }

  function showMode(mode) {
    $("q-text").hidden = mode !== "text";
    $("q-article").hidden = mode !== "article";
    $("q-url").hidden = mode !== "url";
  }

  // ---- talking to the API ----------------------------------------------------------------
  function showError(err) {
    var box = $("error");
    if (!err) { box.hidden = true; box.textContent = ""; return; }
    box.hidden = false;
    box.textContent = err.field ? err.field + ": " + err.message : err.message;
  }

  function api(path, body, isForm) {
    var opts = body === undefined ? {} : {
      method: "POST",
      headers: isForm ? {} : { "Content-Type": "application/json" },
      body: isForm ? body : JSON.stringify(body)
    };
    var started = performance.now();
    return fetch(path, opts).then(function (r) {
      var type = r.headers.get("content-type") || "";
      var read = type.indexOf("json") >= 0 ? r.json() : r.text();
      return read.then(function (data) {
        if (!r.ok) {
          var e = (data && data.error) || { message: r.status + " " + r.statusText };
          throw e;
        }
        if (data && typeof data === "object") data._roundtrip_ms = performance.now() - started;
        return data;
      });
    }, function () { throw { message: "the server cannot be reached" }; });
  }

  function options(approach) {
    var body = { k: parseInt(state.k || config.k, 10), offset: parseInt(state.offset || "0", 10),
                 dedup: state.dedup === undefined ? config.dedup : state.dedup === "1",
                 include_originals: state.orig === undefined ? config.include_originals : state.orig === "1" };
    if (approach) body.approach = approach;
    if (state.min !== undefined && state.min !== "") body.min_score = parseFloat(state.min);
    return body;
  }

  function queryBody(approach) {
    var b = options(approach);
    if (state.key) { b.key = state.key; delete b.approach; return b; }
    var mode = state.mode || "text";
    if (mode === "article") { b.headline = state.headline || ""; b.lead = state.lead || ""; }
    else if (mode === "url") b.url = state.url || "";
    else b.text = state.text || "";
    return b;
  }

  function hasQuery() {
    if (state.key) return true;
    var mode = state.mode || "text";
    if (mode === "article") return !!state.headline;
    if (mode === "url") return !!state.url;
    return !!state.text;
  }

  // ---- rendering ---------------------------------------------------------------------------
  function el(tag, attrs, children) {
    var e = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (a) {
      if (a === "text") e.textContent = attrs[a];
      else if (a === "onclick") e.addEventListener("click", attrs[a]);
      else e.setAttribute(a, attrs[a]);
    });
    (children || []).forEach(function (c) { if (c) e.appendChild(c); });
    return e;
  }

  function inShortlist(key) {
    return shortlist.some(function (s) { return s.key === key; });
  }

  function card(r, originalKey) {
    var star = el("button", { type: "button", "class": "star" + (inShortlist(r.key) ? " on" : ""),
                              title: "add to the shortlist (s)", text: inShortlist(r.key) ? "★ listed" : "☆ shortlist" });
    var c = el("div", { "class": "card" + (r.key === originalKey ? " original" : ""), "data-key": r.key,
                        "data-rank": r.rank, "data-score": r.score }, [
      el("img", { "class": "thumb", loading: "lazy", src: r.thumbnail, alt: r.key,
                  title: "more like this (m)", onclick: function () { moreLike(r.key); } }),
      el("div", { "class": "meta" }, [el("span", { "class": "rank", text: "#" + r.rank }),
                                      el("span", { "class": "score", text: r.score.toFixed(4) })]),
      el("div", { "class": "src", title: (r.metadata && r.metadata.credit) || "",
                  text: r.source + (r.size && r.size.width ? " · " + r.size.width + "×" + r.size.height : "") +
                        (r.metadata && r.metadata.licence_label ? " · " + r.metadata.licence_label : "") }),
      el("div", { "class": "acts" }, [
        el("button", { type: "button", "class": "more", text: "more like this", onclick: function () { moreLike(r.key); } }),
        el("button", { type: "button", "class": "crop", text: "crop", title: "the export's crop (c)",
                       onclick: function () { preview(r); } }),
        star
      ])
    ]);
    star.addEventListener("click", function () { toggleShortlist(r); });
    if (r.duplicates && r.duplicates.length) {
      var d = el("details", { "class": "dups" }, [el("summary", { text: "+" + r.duplicates.length + " near-duplicate" + (r.duplicates.length > 1 ? "s" : "") })]);
      r.duplicates.forEach(function (x) {
        d.appendChild(el("img", { loading: "lazy", src: x.thumbnail, alt: x.key, title: x.key + " · " + x.score.toFixed(4),
                                  onclick: function () { moreLike(x.key); } }));
      });
      c.appendChild(d);
    }
    return c;
  }

  function grid(results, originalKey) {
    var g = el("div", { "class": "grid" });
    results.forEach(function (r) { g.appendChild(card(r, originalKey)); });
    return g;
  }

  function timingText(t, roundtrip) {
    var parts = [];
    if (t.fetch_ms) parts.push("fetch " + t.fetch_ms.toFixed(0) + " ms");
    parts.push("encode " + t.encode_ms.toFixed(1) + " ms", "search " + t.search_ms.toFixed(1) + " ms",
               "server " + t.total_ms.toFixed(1) + " ms");
    if (roundtrip) parts.push("round trip " + roundtrip.toFixed(0) + " ms");
    return parts.join(" · ");
  }

  function status(parts) {
    var s = $("status");
    s.textContent = "";
    parts.forEach(function (p) { s.appendChild(typeof p === "string" ? document.createTextNode(p) : p); });
  }

  function collectCards() {
    cards = [].slice.call(document.querySelectorAll("#search-view .card, #article-detail .card"));
    select(cards.length ? 0 : -1);
  }

  function select(i) {
    if (selected >= 0 && cards[selected]) cards[selected].classList.remove("sel");
    selected = i;
    if (i >= 0 && cards[i]) { cards[i].classList.add("sel"); cards[i].scrollIntoView({ block: "nearest" }); }
  }

  // ---- actions --------------------------------------------------------------------------------
  function search() {
    showError(null);
    var out = $("results");
    if (!hasQuery()) { out.textContent = ""; status([]); $("pager").hidden = true; return; }
    status(["searching…"]);
    var approaches = state.compare === "1" && !state.key ? config.approaches : [state.approach || config.approach];
    Promise.all(approaches.map(function (a) { return api("/api/search", queryBody(a)); })).then(function (answers) {
      out.textContent = "";
      var first = answers[0];
      if (answers.length > 1) {
        var cols = el("div", { "class": "columns" });
        answers.forEach(function (ans, i) {
          cols.appendChild(el("div", {}, [el("h3", { text: approaches[i] + " · " + ans.timings.total_ms.toFixed(1) + " ms" }), grid(ans.results)]));
        });
        out.appendChild(cols);
      } else {
        out.appendChild(grid(first.results));
      }
      var q = first.query;
      var what = q.kind === "key" ? "more like " + q.key : q.kind === "image" ? "an uploaded photo" : null;
      var parts = [first.results.length + " results" + (first.folded ? " (" + first.folded + " near-duplicates folded)" : "") + " · "];
      if (what) parts.push(what + " · ");
      else if (q.text) parts.push(el("span", { "class": "text", text: "“" + q.text.slice(0, 160) + (q.text.length > 160 ? "…" : "") + "”" }), " · ");
      if (q.kind === "url" && q.status !== "ok") parts.push("page: " + q.status + " · ");
      parts.push(timingText(first.timings, first._roundtrip_ms));
      status(parts);
      $("pager").hidden = false;
      $("prev").disabled = !first.offset;
      $("next").disabled = first.results.length < first.k;
      collectCards();
    }, function (err) { out.textContent = ""; status([]); showError(err); });
  }

  function run(push) {
    writeUrl(!push);
    stateToForm();
    if (state.view === "articles") { showView("articles"); loadArticles(); if (state.article) loadArticle(state.article); }
    else { showView("search"); search(); }
  }

  function moreLike(key) {
    state = Object.assign({}, state, { view: "search", key: key, offset: "" });
    run(true);
  }

  function preview(r) {
    $("preview-img").src = r.crop;
    $("preview-cap").textContent = r.key + " · the MediaEval export's " + config.crop[0] + "×" + config.crop[1] + " crop";
    $("preview").showModal();
  }

  function toggleShortlist(r) {
    if (inShortlist(r.key)) shortlist = shortlist.filter(function (s) { return s.key !== r.key; });
    else shortlist.push({ key: r.key, score: r.score, rank: r.rank, thumbnail: r.thumbnail });
    saveShortlist();
  }

  function refreshStars() {
    [].forEach.call(document.querySelectorAll(".card"), function (c) {
      var b = c.querySelector(".star"), on = inShortlist(c.getAttribute("data-key"));
      if (b) { b.classList.toggle("on", on); b.textContent = on ? "★ listed" : "☆ shortlist"; }
    });
  }

  function saveShortlist() {
    refreshStars();
    state.sl = shortlist.map(function (s) { return s.key + "~" + (s.score === null ? "" : s.score); }).join(",");
    writeUrl(true);
    renderShortlist();
  }

  function loadShortlist() {
    shortlist = (state.sl || "").split(",").filter(Boolean).map(function (p) {
      var i = p.lastIndexOf("~"), key = i >= 0 ? p.slice(0, i) : p, score = i >= 0 ? p.slice(i + 1) : "";
      return { key: key, score: score === "" ? null : parseFloat(score), thumbnail: "/api/images/" + encodeURIComponent(key) + "/thumb" };
    });
    renderShortlist();
  }

  function renderShortlist() {
    var ol = $("sl-items");
    ol.textContent = "";
    shortlist.forEach(function (s) {
      ol.appendChild(el("li", { "data-key": s.key }, [
        el("img", { src: s.thumbnail, alt: "", loading: "lazy" }), el("code", { text: s.key, title: s.key }),
        el("button", { type: "button", text: "×", title: "remove", onclick: function () { toggleShortlist(s); } })
      ]));
    });
    $("sl-count").textContent = shortlist.length;
  }

  function exportShortlist(format) {
    showError(null);
    if (!shortlist.length) { showError({ message: "the shortlist is empty: add photos with ☆ or the s key" }); return; }
    var body = { format: format, title: "newsimg shortlist",
                 items: shortlist.map(function (s, i) { return { key: s.key, score: s.score, rank: i + 1 }; }) };
    fetch("/api/export", { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) })
      .then(function (r) {
        if (!r.ok) return r.json().then(function (d) { throw d.error; });
        var name = (r.headers.get("content-disposition") || "").replace(/.*filename="([^"]+)".*/, "$1") || "shortlist";
        return r.blob().then(function (blob) {
          var a = el("a", { href: URL.createObjectURL(blob), download: name });
          document.body.appendChild(a); a.click(); a.remove();
        });
      }).catch(showError);
  }

  function uploadImage(file) {
    showError(null);
    if (!file) return;
    if (file.size > config.max_upload_bytes) {
      showError({ field: "image", message: "the file is " + file.size + " bytes, above the limit of " + config.max_upload_bytes });
      return;
    }
    var form = new FormData();
    form.append("image", file);
    var o = options();
    ["k", "offset", "dedup", "min_score", "include_originals"].forEach(function (f) { if (o[f] !== undefined) form.append(f, o[f]); });
    status(["encoding the photo…"]);
    api("/api/search/image", form, true).then(function (ans) {
      var out = $("results");
      out.textContent = "";
      out.appendChild(grid(ans.results));
      status([ans.results.length + " results for " + file.name + " · " + timingText(ans.timings, ans._roundtrip_ms)]);
      $("pager").hidden = true;
      collectCards();
    }, function (err) { status([]); showError(err); });
  }

  // ---- the pipeline's articles ----------------------------------------------------------------
  function showView(view) {
    $("search-view").hidden = view !== "search";
    $("articles-view").hidden = view !== "articles";
    $("tab-search").classList.toggle("on", view === "search");
    $("tab-articles").classList.toggle("on", view === "articles");
  }

  var articlesLoaded = false;
  function loadArticles() {
    if (articlesLoaded) return;
    api("/api/articles?limit=1000").then(function (list) {
      articlesLoaded = true;
      var box = $("article-list");
      box.textContent = "";
      list.articles.forEach(function (a) {
        box.appendChild(el("button", { type: "button", "data-article": a.article_id, text: a.article_id + ". " + a.headline,
                                       onclick: function () { state = { view: "articles", article: a.article_id, sl: state.sl }; run(true); } }));
      });
    }, showError);
  }

  function loadArticle(id) {
    api("/api/articles/" + encodeURIComponent(id) + "?k=" + (state.k || 10)).then(function (a) {
      var box = $("article-detail");
      box.textContent = "";
      box.appendChild(el("div", { "class": "article-head" }, [
        el("strong", { text: a.article_id + ". " + a.headline }),
        el("p", { text: a.lead.slice(0, 400) }),
        el("button", { type: "button", text: "search it live, three approaches side by side",
                       onclick: function () { state = { view: "search", mode: "article", headline: a.headline, lead: a.lead, compare: "1", sl: state.sl }; run(true); } })
      ]));
      var cols = el("div", { "class": "columns" });
      Object.keys(a.approaches).forEach(function (name) {
        var ap = a.approaches[name];
        cols.appendChild(el("div", {}, [
          el("h3", { text: name + " · original " + (ap.original_rank ? "at #" + ap.original_rank : "not in the stored top-k") }),
          grid(ap.results, a.image_id)
        ]));
      });
      box.appendChild(cols);
      collectCards();
    }, showError);
  }

  // ---- wiring -----------------------------------------------------------------------------------
  function wire() {
    $("query").addEventListener("submit", function (e) {
      e.preventDefault();
      state = formToState();
      state.offset = "";
      run(true);
    });
    [].forEach.call(document.querySelectorAll("input[name=mode]"), function (r) {
      r.addEventListener("change", function () { showMode(r.value); });
    });
    $("tab-search").addEventListener("click", function () { state.view = "search"; run(true); });
    $("tab-articles").addEventListener("click", function () { state.view = "articles"; run(true); });
    $("prev").addEventListener("click", function () { page(-1); });
    $("next").addEventListener("click", function () { page(1); });
    [].forEach.call(document.querySelectorAll("[data-export]"), function (b) {
      b.addEventListener("click", function () { exportShortlist(b.getAttribute("data-export")); });
    });
    $("sl-clear").addEventListener("click", function () { shortlist = []; saveShortlist(); });
    var drop = $("drop");
    ["dragenter", "dragover"].forEach(function (t) { drop.addEventListener(t, function (e) { e.preventDefault(); drop.classList.add("over"); }); });
    ["dragleave", "drop"].forEach(function (t) { drop.addEventListener(t, function (e) { e.preventDefault(); drop.classList.remove("over"); }); });
    drop.addEventListener("drop", function (e) { uploadImage(e.dataTransfer.files[0]); });
    drop.addEventListener("keydown", function (e) { if (e.key === "Enter" || e.key === " ") { e.preventDefault(); $("file").click(); } });
    $("file").addEventListener("change", function () { uploadImage($("file").files[0]); });
    window.addEventListener("popstate", function () { state = readUrl(); loadShortlist(); run(false); });
    document.addEventListener("keydown", keys);
  }

  function page(step) {
    var k = parseInt(state.k || config.k, 10), off = parseInt(state.offset || "0", 10);
    state.offset = String(Math.max(0, off + step * k));
    run(true);
  }

  function keys(e) {
    var typing = /^(INPUT|TEXTAREA|SELECT)$/.test(e.target.tagName);
    if (e.key === "Escape") { if (typing) e.target.blur(); return; }
    if (typing || e.ctrlKey || e.metaKey || e.altKey) return;
    var c = cards[selected], key = c && c.getAttribute("data-key");
    var r = c && { key: key, rank: +c.getAttribute("data-rank"), score: +c.getAttribute("data-score"),
                   thumbnail: "/api/images/" + encodeURIComponent(key) + "/thumb", crop: "/api/images/" + encodeURIComponent(key) + "/crop" };
    if (e.key === "/") { e.preventDefault(); var box = [$("q-text"), $("q-headline"), $("q-url")].filter(function (x) { return x.offsetParent; })[0]; if (box) box.focus(); }
    else if (e.key === "ArrowRight" || e.key === "j") { e.preventDefault(); select(Math.min(cards.length - 1, selected + 1)); }
    else if (e.key === "ArrowLeft" || e.key === "k") { e.preventDefault(); select(Math.max(0, selected - 1)); }
    else if (e.key === "m" && r) moreLike(key);
    else if (e.key === "s" && r) toggleShortlist(r);
    else if (e.key === "c" && r) preview(r);
    else if (e.key === "n" && !$("pager").hidden && !$("next").disabled) page(1);
    else if (e.key === "p" && !$("pager").hidden && !$("prev").disabled) page(-1);
  }

  api("/api/config").then(function (c) {
    config = c;
    var sel = $("approach");
    c.approaches.forEach(function (a) { sel.appendChild(el("option", { value: a, text: a })); });
    sel.value = c.approach;
    $("k").max = c.max_k;
    $("pool").textContent = c.pool + " photos · " + c.articles + " articles";
    wire();
    state = readUrl();
    loadShortlist();
    run(false);
  }, function (err) { showError(err); });
})();
