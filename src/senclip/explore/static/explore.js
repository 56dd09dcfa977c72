// senclip explore: the page. Everything it loads comes from the server that served it
// (docs/explore.md lists the endpoints); a basemap only when the server was started with one.
// The view and the text query live in the URL's hash (#map=z/lat/lon&q=...&t=...) for sharing.
"use strict";

(function () {
  const $ = (id) => document.getElementById(id);
  const fmt = (v, digits) => Number(v).toLocaleString("en", { maximumFractionDigits: digits, minimumFractionDigits: digits });

  async function getJSON(url) {
    const response = await fetch(url);
    const body = await response.json();
    if (!response.ok) throw new Error(body.error || response.statusText);
    return body;
  }

  function readHash() {
    const params = new URLSearchParams(location.hash.slice(1));
    return { view: params.get("map"), q: params.get("q"), t: params.get("t") };
  }

  function writeHash(map, search) {
    const c = map.getCenter();
    const params = new URLSearchParams();
    params.set("map", `${map.getZoom()}/${c.lat.toFixed(5)}/${c.lng.toFixed(5)}`);
    if (search.query) {
      params.set("q", search.query);
      params.set("t", String(search.threshold));
    }
    history.replaceState(null, "", "#" + params.toString());
  }

  function cell(row, text, className) {
    const td = row.insertCell();
    td.textContent = text;
    if (className) td.className = className;
    return td;
  }

  function swatch(color) {
    const span = document.createElement("span");
    span.className = "swatch";
    span.style.backgroundColor = color;
    return span;
  }

  function showLegend(legend) {
    const body = $("legend-table").tBodies[0];
    for (const c of legend.classes) {
      const row = body.insertRow();
      row.dataset.value = c.value;
      row.dataset.color = c.color;
      cell(row, "").appendChild(swatch(c.color));
      cell(row, c.name, "name");
      cell(row, fmt(c.area_km2, 3), "num");
      cell(row, fmt(c.percent, 1), "num");
    }
    $("legend-note").textContent = `mapped: ${fmt(legend.mapped_km2, 3)} km²` +
      (legend.nodata.pixels ? `; no data: ${fmt(legend.nodata.area_km2, 3)} km²` : "") + `; ${legend.area}`;
  }

  function showPoint(p) {
    const info = $("point-info");
    info.replaceChildren();
    const table = document.createElement("table");
    const add = (label, value) => {
      const row = table.insertRow();
      cell(row, label);
      const td = cell(row, "");
      if (value instanceof Node) td.appendChild(value); else td.textContent = value;
      return td;
    };
    add("WGS84", `${fmt(p.lat, 6)}, ${fmt(p.lon, 6)}`);
    add(p.crs, `${fmt(p.x, 2)}, ${fmt(p.y, 2)}`);
    add("pixel", `row ${p.row}, col ${p.col}`);
    if (p.class) {
      const span = document.createElement("span");
      span.append(swatch(p.class.color), " ", p.class.name);
      const td = add("class", span);
      td.id = "point-class";
      td.dataset.value = p.class.value;
    } else {
      add("class", "no data").id = "point-class";
    }
    for (const [i, c] of (p.probabilities || []).entries()) {
      add(i === 0 ? "top 3" : "", `${c.name}: ${fmt(c.probability, 3)}`).className = "probability";
    }
    info.appendChild(table);
  }

  async function main() {
    const info = await getJSON("/api/info");
    const legend = await getJSON("/api/legend");
    document.title = `senclip explore: ${info.title}`;
    $("title").textContent = info.title;
    $("crs").textContent = `map CRS ${info.crs}`;
    $("notes").textContent = info.notes.join(" ");
    const bounds = L.latLngBounds(info.layers.classes.bounds);  // the class map: the view, clicks
    const maxZoom = Math.min(24, Math.max(22, info.maxzoom + 4));  // the server draws every zoom up to 24
    // no fade: a tile is drawn at once in its final colours (and a screenshot shows them)
    // whole zoom levels only: Leaflet 1.9's setUrl/redraw would ask for tiles at a fractional zoom
    const map = L.map("map", { attributionControl: Boolean(info.basemap), maxZoom: maxZoom, fadeAnimation: false });
    window.senclip = { map: map, info: info };
    const hash = readHash();
    const view = hash.view && hash.view.split("/").map(Number);
    if (view && view.length === 3 && view.every(Number.isFinite)) map.setView([view[1], view[2]], view[0]);
    else map.fitBounds(bounds, { padding: [12, 12] });

    // panes fix the stacking whatever order layers are switched on: composite, classes, probability, search
    [["composite", 210], ["classes", 220], ["probability", 230], ["search", 240]].forEach(([name, z]) => {
      map.createPane(name).style.zIndex = z;
    });
    if (info.basemap) {
      L.tileLayer(info.basemap, { maxZoom: maxZoom, attribution: `basemap: ${new URL(info.basemap.replace("{s}", "a")).host}` }).addTo(map);
    }
    // each layer asks for tiles inside its own bounds only (the layers of a map need not share one extent)
    const options = (pane, opacity) => ({ bounds: L.latLngBounds(info.layers[pane].bounds), pane: pane, opacity: opacity, maxZoom: maxZoom, noWrap: true });
    const layers = {};
    const hookup = (name, layer) => {
      layers[name] = layer;
      const show = $(`show-${name}`);
      const sync = () => (show.checked ? layer.addTo(map) : layer.remove());
      show.addEventListener("change", sync);
      $(`opacity-${name}`).addEventListener("input", (e) => layer.setOpacity(Number(e.target.value)));
      layer.setOpacity(Number($(`opacity-${name}`).value));
      sync();
    };
    hookup("classes", L.tileLayer("/tiles/classes/{z}/{x}/{y}.png", options("classes", 1)));
    showLegend(legend);

    const composite = info.layers.composite;
    if (composite) {
      $("layer-composite").hidden = false;
      const month = $("composite-month");
      for (const m of composite.months) {
        const flagged = m.flagged === undefined ? "" : ` (${fmt(100 * m.flagged, 0)} % not clear)`;
        month.add(new Option(`${m.label || "month " + m.month}${flagged}`, String(m.month)));
      }
      month.value = String(composite.month);
      $("composite-months").hidden = composite.months.length < 2;
      const url = () => `/tiles/composite/{z}/{x}/{y}.png?min=${$("stretch-min").value}&max=${$("stretch-max").value}&month=${month.value}`;
      $("stretch-min").value = Number(composite.stretch[0].toPrecision(4));
      $("stretch-max").value = Number(composite.stretch[1].toPrecision(4));
      const layer = L.tileLayer(url(), options("composite", 1));
      hookup("composite", layer);
      $("stretch").addEventListener("submit", (e) => { e.preventDefault(); layer.setUrl(url()); });
      month.addEventListener("change", () => layer.setUrl(url()));
    }

    const probability = info.layers.probability;
    if (probability) {
      $("layer-probability").hidden = false;
      const select = $("probability-class");
      probability.classes.forEach((name, i) => select.add(new Option(name, String(i))));
      const url = () => `/tiles/probability/{z}/{x}/{y}.png?class=${select.value}`;
      const layer = L.tileLayer(url(), options("probability", 0.8));
      hookup("probability", layer);
      select.addEventListener("change", () => layer.setUrl(url()));
    }

    map.on("click", async (e) => {
      if (!bounds.contains(e.latlng)) {
        $("point-info").textContent = "outside the map";
        return;
      }
      try {
        showPoint(await getJSON(`/api/point?lon=${e.latlng.lng}&lat=${e.latlng.lat}`));
      } catch (err) {
        $("point-info").textContent = err.message;
      }
    });

    const search = { query: null, threshold: null, layer: null, outline: null };
    if (info.layers.search) {
      $("search").hidden = false;
      $("query").maxLength = info.layers.search.max_query_chars;
      const searchUrl = () => `/tiles/search/{z}/{x}/{y}.png?q=${encodeURIComponent(search.query)}&threshold=${search.threshold}`;
      const setThreshold = (t) => {
        search.threshold = t;
        $("threshold-value").textContent = fmt(t, 4);
        const q = encodeURIComponent(search.query);
        $("download-tif").href = `/api/search.tif?q=${q}`;
        $("download-geojson").href = `/api/search.geojson?q=${q}&threshold=${t}`;
        search.layer.setUrl(searchUrl());
        writeHash(map, search);
      };
      const run = async (query, threshold) => {
        $("search-error").hidden = true;
        if (!query.trim()) {
          $("search-error").textContent = "type a phrase first";
          $("search-error").hidden = false;
          return;
        }
        let s;
        try {
          s = await getJSON(`/api/search?q=${encodeURIComponent(query)}`);
        } catch (err) {
          $("search-error").textContent = err.message;
          $("search-error").hidden = false;
          return;
        }
        const slider = $("threshold");
        slider.min = s.min;
        slider.max = s.max;
        slider.step = (s.max - s.min) / 200 || 1e-6;
        const t = threshold !== null && Number.isFinite(threshold) ? threshold : s.min;
        slider.value = t;
        search.query = query;
        search.threshold = t;
        if (!search.layer) {
          search.layer = L.tileLayer(searchUrl(), options("search", 0.85));
          hookup("search", search.layer);
          $("layer-search").hidden = false;
        }
        if (search.outline) search.outline.remove();
        search.outline = L.rectangle(s.best_bounds, { color: "#00e5ff", weight: 2, fill: false, interactive: false }).addTo(map);
        const best = $("best-tile");
        best.textContent = `row ${s.best_tile[0]}, col ${s.best_tile[1]}`;
        best.dataset.row = s.best_tile[0];
        best.dataset.col = s.best_tile[1];
        $("best-score").textContent = fmt(s.best_score, 4);
        $("search-range").textContent = `${s.tiles} tiles, scores ${fmt(s.min, 4)} to ${fmt(s.max, 4)} (median ${fmt(s.median, 4)})`;
        $("search-result").hidden = false;
        setThreshold(t);
        $("search-result").dataset.query = query;
      };
      $("search-form").addEventListener("submit", (e) => { e.preventDefault(); run($("query").value, null); });
      $("threshold").addEventListener("change", (e) => setThreshold(Number(e.target.value)));
      if (hash.q) {
        $("query").value = hash.q;
        run(hash.q, hash.t === null ? null : Number(hash.t));
      }
    }
    map.on("moveend", () => writeHash(map, search));
    document.body.dataset.ready = "true";
  }

  main().catch((err) => {
    $("point-info").textContent = `could not start: ${err.message}`;
    throw err;
  });
})();
