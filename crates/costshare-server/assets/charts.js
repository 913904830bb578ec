// Charts drawn as inline SVG from the API's JSON. Geometry may use Number();
// every figure shown is the API's exact string (grouped by money()).
// Colours come from app.css classes (c0..c10, bar-pos, bar-neg): no inline styles.

import { el, svgEl, clear, money, approx } from './util.js';

// Roughly how wide a label of `n` characters is at the charts' 13 px font.
const textWidth = (n) => Math.ceil(n * 7.8) + 10;

function widthOf(container) {
  return Math.max(280, Math.floor(container.clientWidth || container.parentElement?.clientWidth || 600));
}

// Horizontal stacked bars: one row per group (fiscal year), one segment per series (party).
// groups: [{label, total}], series: [{name, cls, values: [string per group]}]
export function stackedBars(container, groups, series, title) {
  clear(container);
  const W = widthOf(container);
  const labelW = Math.min(Math.floor(W * 0.3), textWidth(Math.max(4, ...groups.map((g) => g.label.length))));
  const totalW = Math.min(Math.floor(W * 0.4), textWidth(Math.max(1, ...groups.map((g) => money(g.total).length))));
  const barW = Math.max(40, W - labelW - totalW - 8);
  const rowH = 30;
  const H = groups.length * rowH + 6;
  const max = Math.max(1, ...groups.map((g, i) => series.reduce((s, se) => s + Math.max(0, approx(se.values[i])), 0)));
  const svg = svgEl('svg', { viewBox: `0 0 ${W} ${H}`, width: W, height: H, role: 'img', 'aria-label': title });
  svg.append(svgEl('title', { text: title }));
  groups.forEach((g, i) => {
    const y = i * rowH + 4;
    svg.append(svgEl('text', { x: 0, y: y + rowH / 2, 'dominant-baseline': 'middle', text: g.label }));
    let x = labelW;
    for (const se of series) {
      const v = Math.max(0, approx(se.values[i]));
      const w = (v / max) * barW;
      if (w <= 0) continue;
      const rect = svgEl('rect', { x: x.toFixed(2), y, width: w.toFixed(2), height: rowH - 8, class: se.cls });
      rect.append(svgEl('title', { text: `${se.name} ${g.label}: ${money(se.values[i])}` }));
      svg.append(rect);
      x += w;
    }
    svg.append(svgEl('text', { x: W - 2, y: y + rowH / 2, 'text-anchor': 'end', 'dominant-baseline': 'middle', text: money(g.total) }));
  });
  container.append(svg);
  container.append(
    el('ul', { class: 'legend' }, series.map((se) => el('li', {}, el('span', { class: `swatch ${se.cls}`, 'aria-hidden': 'true' }), se.name))),
  );
}

// Horizontal bars around zero: rows [{label, value: string}]
export function deltaBars(container, rows, title) {
  clear(container);
  const W = widthOf(container);
  const labelW = Math.min(Math.floor(W * 0.3), textWidth(Math.max(4, ...rows.map((r) => Math.min(28, r.label.length)))));
  const valueW = Math.min(Math.floor(W * 0.4), textWidth(Math.max(1, ...rows.map((r) => money(r.value).length))));
  const area = Math.max(40, W - labelW - valueW - 8);
  const rowH = 26;
  const H = rows.length * rowH + 8;
  const max = Math.max(1, ...rows.map((r) => Math.abs(approx(r.value))));
  const mid = labelW + area / 2;
  const svg = svgEl('svg', { viewBox: `0 0 ${W} ${H}`, width: W, height: H, role: 'img', 'aria-label': title });
  svg.append(svgEl('title', { text: title }));
  rows.forEach((r, i) => {
    const y = i * rowH + 4;
    const label = r.label.length > 28 ? r.label.slice(0, 27) + '…' : r.label;
    svg.append(svgEl('text', { x: 0, y: y + rowH / 2, 'dominant-baseline': 'middle', text: label }, svgEl('title', { text: r.label })));
    const v = approx(r.value);
    const w = (Math.abs(v) / max) * (area / 2);
    if (w > 0) {
      const rect = svgEl('rect', {
        x: (v < 0 ? mid - w : mid).toFixed(2),
        y: y + 3,
        width: w.toFixed(2),
        height: rowH - 10,
        class: v < 0 ? 'bar-neg' : 'bar-pos',
      });
      rect.append(svgEl('title', { text: `${r.label}: ${money(r.value)}` }));
      svg.append(rect);
    }
    svg.append(svgEl('text', { x: W - 2, y: y + rowH / 2, 'text-anchor': 'end', 'dominant-baseline': 'middle', text: money(r.value) }));
  });
  svg.append(svgEl('line', { x1: mid, x2: mid, y1: 0, y2: H, class: 'zero' }));
  container.append(svg);
}

// A small use-against-cap meter; percent is the API's string ("97.0").
export function meter(percent, label) {
  const p = Math.max(0, Math.min(100, approx(percent)));
  const svg = svgEl('svg', { class: 'meter', viewBox: '0 0 100 10', preserveAspectRatio: 'none', role: 'img', 'aria-label': label });
  svg.append(svgEl('rect', { class: 'track', x: 0, y: 0, width: 100, height: 10, rx: 2 }));
  svg.append(svgEl('rect', { class: p >= 100 ? 'fill full' : 'fill', x: 0, y: 0, width: p.toFixed(2), height: 10, rx: 2 }));
  return svg;
}
