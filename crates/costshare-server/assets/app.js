// costshare dashboard: plain ES modules, no framework, no build step.
// Every string from the server reaches the page through textContent (el()),
// never innerHTML; money is shown as the API's decimal strings, grouped.

import { el, clear, money, sumMoney, subMoney, cmpMoney, isZeroMoney, signOf, agreementStructure } from './util.js';
import { stackedBars, deltaBars, meter } from './charts.js';

const TOKEN_KEY = 'costshare.token';
const THEME_KEY = 'costshare.theme';
const VIEWS = ['overview', 'costs', 'compare', 'whatif', 'record'];
const $ = (sel) => document.querySelector(sel);

const state = {
  whoami: null,
  info: null,
  cache: new Map(), // GET path -> promise of the body; cleared after a write
  redraw: new Map(), // chart id -> function that draws it again at the new width
};

// ---------- token ----------

function takeTokenFromUrl() {
  // `#token=...` (alone or among other hash parameters) is accepted once, then removed.
  const hash = location.hash.slice(1);
  const m = /(^|[?&])token=([^&]*)/.exec(hash);
  if (!m) return;
  try {
    sessionStorage.setItem(TOKEN_KEY, decodeURIComponent(m[2]));
  } catch {
    sessionStorage.setItem(TOKEN_KEY, m[2]);
  }
  let rest = hash.replace(/(^|[?&])token=[^&]*/, '$1').replace(/[?&]+$/, '').replace(/\?&/, '?');
  if (rest === '' || rest.startsWith('&')) rest = 'overview';
  history.replaceState(null, '', location.pathname + location.search + '#' + rest);
}

const token = () => sessionStorage.getItem(TOKEN_KEY) || '';

function showTokenBox(message) {
  $('#token-box').hidden = false;
  $('#token-error').textContent = message || '';
  $('#sign-out').hidden = !token();
  for (const v of VIEWS) $(`#view-${v}`).hidden = true;
  $('#token-input').focus();
}

// ---------- API ----------

class ApiError extends Error {
  constructor(status, body) {
    const e = body && typeof body === 'object' && body.error ? body.error : null;
    super(e ? `${e.message || e.code}` : typeof body === 'string' && body ? body : `HTTP ${status}`);
    this.status = status;
    this.body = body;
    this.error = e;
  }
}

async function api(path, opts = {}) {
  const headers = Object.assign({}, opts.headers || {}, { Authorization: `Bearer ${token()}` });
  let res;
  try {
    res = await fetch(path, Object.assign({}, opts, { headers }));
  } catch (e) {
    throw new ApiError(0, `The server did not answer (${e.message}).`);
  }
  const ctype = res.headers.get('content-type') || '';
  const body = ctype.includes('json') ? await res.json().catch(() => null) : await res.text();
  if (res.status === 401) {
    showTokenBox('The server refused this token. Enter a valid one.');
    throw new ApiError(401, body);
  }
  if (!res.ok) throw new ApiError(res.status, body);
  return body;
}

function cached(path) {
  if (!state.cache.has(path)) {
    const p = api(path);
    p.catch(() => state.cache.delete(path));
    state.cache.set(path, p);
  }
  return state.cache.get(path);
}

const postJson = (path, obj) => api(path, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(obj) });

function status(msg, isError) {
  const s = $('#status');
  s.textContent = msg || '';
  s.classList.toggle('error', !!isError);
}

// ---------- routing: #view?param=value ----------

function route() {
  const hash = location.hash.slice(1);
  const q = hash.indexOf('?');
  const view = (q < 0 ? hash : hash.slice(0, q)) || 'overview';
  const params = new URLSearchParams(q < 0 ? '' : hash.slice(q + 1));
  return { view: VIEWS.includes(view) ? view : null, params };
}

function setParams(view, params) {
  const qs = params.toString();
  history.replaceState(null, '', location.pathname + location.search + '#' + view + (qs ? '?' + qs : ''));
}

async function show(fromNav) {
  const { view, params } = route();
  if (!view) return;
  if (!token()) {
    showTokenBox('');
    return;
  }
  $('#token-box').hidden = true;
  for (const v of VIEWS) $(`#view-${v}`).hidden = v !== view;
  for (const a of document.querySelectorAll('nav a')) {
    if (a.dataset.view === view) a.setAttribute('aria-current', 'page');
    else a.removeAttribute('aria-current');
  }
  status('');
  if (fromNav) $(`#view-${view} h1`).focus();
  try {
    await ensureSession();
    // a page this token is not offered (a link made by another user): say
    // why instead of a form that fails when used
    if ($(`nav a[data-view=${view}]`)?.hidden) {
      const w = state.whoami;
      status(`The ${view} page is not available to the token ${w.name} (${w.role}${w.party ? ', scoped to ' + w.party : ''}).`, true);
      return;
    }
    await RENDER[view](params);
  } catch (e) {
    if (e.status !== 401) status(e.message, true);
  }
}

async function ensureSession() {
  if (!state.whoami) {
    state.whoami = await api('/api/v1/whoami');
    const w = state.whoami;
    $('#who').textContent = `${w.name} (${w.role}${w.party ? ', ' + w.party : ''})`;
    $('#sign-out').hidden = false;
    // a viewer's token may not record: the Record page is not offered; a
    // party-scoped token only reads its party's lines, and compare and
    // what-if cover every party's: those pages are not offered either
    $('nav a[data-view=record]').hidden = w.role === 'viewer' || !!w.party;
    $('nav a[data-view=compare]').hidden = !!w.party;
    $('nav a[data-view=whatif]').hidden = !!w.party;
  }
  if (!state.info) {
    state.info = await api('/api/v1/info');
    $('#agreement-title').textContent = state.info.agreement?.title || state.info.agreement?.id || '';
  }
}

function invalidate() {
  state.cache.clear();
  state.info = null;
  whatif.loaded = false;
}

// ---------- shared pieces ----------

function partyIds() {
  return (state.info?.agreement?.parties || []).map((p) => p.id);
}

function partyName(id) {
  const p = (state.info?.agreement?.parties || []).find((x) => x.id === id);
  return p && p.name && p.name !== id ? `${id} (${p.name})` : id;
}

function partyClass(id) {
  const i = partyIds().indexOf(id);
  return `c${(i < 0 ? 10 : i) % 11}`;
}

function table(node, head, rows, foot) {
  clear(node);
  if (head) node.append(el('thead', {}, el('tr', {}, head)));
  node.append(el('tbody', {}, rows));
  if (foot) node.append(el('tfoot', {}, foot));
  return node;
}

const th = (text, numeric) => el('th', { scope: 'col', class: numeric ? 'n' : undefined, text });
const td = (text, cls, data) => el('td', { class: cls, text, data });
const moneyTd = (s, data) => el('td', { class: 'n', text: money(s), data });
const shortHash = (h) => (h ? String(h).slice(0, 12) : '');
const dimLabel = (d) => String(d).replace(/_/g, ' ');
const dash = (v) => (v === null || v === undefined || v === '' ? '—' : String(v));

// The ceilings (from ceilings JSON) in one table, a row group per category and
// layer; a group's rows fold under its heading button (short groups start open,
// a labor cap per month starts folded).
function renderCeilings(container, json) {
  clear(container);
  const rows = json?.ceilings || [];
  if (!rows.length) {
    container.append(el('p', { class: 'muted', text: 'No capped layers.' }));
    return;
  }
  const currency = json.currency;
  const groups = new Map();
  for (const r of rows) {
    const k = `${r.category} layer ${r.layer}`;
    if (!groups.has(k)) groups.set(k, []);
    groups.get(k).push(r);
  }
  const t = el('table', { class: 'num ceil' });
  t.append(el('thead', {}, el('tr', {}, th('period'), th('cap', true), th('used', true), th('use', true), th('bound on'), th('forecast'))));
  for (const [name, list] of groups) {
    const open = list.length <= 12;
    const atCap = list.filter((r) => r.remaining !== undefined && isZeroMoney(r.remaining)).length;
    const forecasts = list.filter((r) => r.forecast_bound_on).length;
    const unit = list[0].unit && list[0].unit !== currency ? ` ${list[0].unit}` : '';
    const body = list.map((r) =>
      el(
        'tr',
        { data: { category: r.category, layer: r.layer, period: r.period }, hidden: !open },
        el('td', {}, r.period, r.open ? [' ', el('span', { class: 'tag', text: 'open', title: 'the period has not ended' })] : null),
        el('td', { class: 'n', text: money(r.cap) + unit }),
        el('td', { class: 'n', text: money(r.used) + unit }),
        el('td', { class: 'n' }, meter(r.percent_used, `${r.percent_used}% used`), ` ${r.percent_used}%`),
        td(dash(r.bound_on), 'bound'),
        td(dash(r.forecast_bound_on), 'forecast'),
      ),
    );
    const btn = el('button', {
      type: 'button',
      class: 'group-toggle',
      'aria-expanded': String(open),
      onclick: () => {
        const now = btn.getAttribute('aria-expanded') !== 'true';
        btn.setAttribute('aria-expanded', String(now));
        for (const tr of body) tr.hidden = !now;
      },
    }, el('strong', { text: name }), ` — ${list.length} period${list.length === 1 ? '' : 's'}, ${atCap} at cap` + (forecasts ? `, ${forecasts} forecast to reach it` : ''));
    t.append(el('tbody', { class: 'group', data: { group: name } }, el('tr', { class: 'group-head' }, el('th', { colspan: 6, scope: 'rowgroup' }, btn)), body));
  }
  container.append(el('div', { class: 'scroll' }, t));
}

function errorList(node, e) {
  clear(node);
  const err = e?.error || {};
  const items = [];
  if (Array.isArray(err.diagnostics)) items.push(...err.diagnostics);
  if (Array.isArray(e?.body?.diagnostics)) items.push(...e.body.diagnostics);
  if (!items.length) items.push(e.message);
  for (const d of items) {
    const text = typeof d === 'string' ? d : [d.severity, d.path || d.location, d.message].filter(Boolean).join(': ') || JSON.stringify(d);
    node.append(el('li', { text }));
  }
}

// ---------- overview ----------

async function renderOverview() {
  const info = state.info;
  const ag = info.agreement || {};
  const versions = info.versions || [];
  // in force: the last version effective on or before the as-of date (ISO dates compare as text)
  const started = versions.filter((v) => !info.as_of || !v.effective || v.effective <= info.as_of);
  const latest = started[started.length - 1] || versions[versions.length - 1] || {};
  const next = versions.find((v) => info.as_of && v.effective && v.effective > info.as_of);
  const dl = clear($('#ov-agreement-dl'));
  const kv = (k, v, id) => [el('dt', { text: k }), el('dd', { text: v, id })];
  dl.append(
    ...kv('Title', ag.title || ''),
    ...kv('Id', ag.id || ''),
    ...kv('Term', `${ag.start || '?'} to ${ag.end || '?'}`),
    ...kv('Currency', ag.currency || ''),
    ...kv('Parties', (ag.parties || []).map((p) => partyName(p.id)).join(', ')),
    ...kv('Version in force', latest.version !== undefined ? `${latest.version} (effective ${latest.effective || '?'}), ${versions.length} in all` : '—'),
    ...kv('sha256', latest.sha256 || ''),
    ...(next ? kv('Next', `version ${next.version} from ${next.effective}`) : []),
  );
  // a party-scoped view counts only the lines that party shares in: say so
  // where the totals are, so that no one reads them as whole
  const scoped = state.whoami?.party;
  $('#ov-p-h').textContent = scoped
    ? `Each party's totals by fiscal year: only the lines ${scoped} shares in`
    : "Each party's totals by fiscal year";
  const jl = clear($('#ov-journal-dl'));
  jl.append(
    ...kv('Entries', String(info.journal?.entries ?? '')),
    ...kv('Head', info.journal?.head || '', 'journal-head'),
    ...kv('As of', info.as_of || ''),
  );

  const [report, ceilings] = await Promise.all([
    cached('/api/v1/report?by=fiscal_year,party&format=json'),
    cached('/api/v1/ceilings?format=json'),
  ]);
  const parties = partyIds();
  for (const r of report.rows || []) if (!parties.includes(r.party)) parties.push(r.party);
  const years = [...new Set((report.rows || []).map((r) => r.fiscal_year))];
  const amount = new Map((report.rows || []).map((r) => [`${r.fiscal_year}|${r.party}`, r.amount]));
  const groups = years.map((fy) => ({ label: fy, total: sumMoney(parties.map((p) => amount.get(`${fy}|${p}`) || '0')) }));
  const series = parties.map((p) => ({ name: partyName(p), cls: partyClass(p), values: years.map((fy) => amount.get(`${fy}|${p}`) || '0') }));
  const draw = () => stackedBars($('#ov-party-chart'), groups, series, `Each party's totals by fiscal year, in ${report.currency}`);
  state.redraw.set('overview', draw);
  draw();
  const provisional = new Set((report.rows || []).filter((r) => r.provisional).map((r) => r.fiscal_year));
  const body = years.map((fy) =>
    el(
      'tr',
      {},
      el(
        'th',
        { scope: 'row' },
        fy,
        provisional.has(fy) ? [' ', el('span', { class: 'tag', text: 'provisional', title: 'has lines in a pro-rata period not yet ended' })] : null,
      ),
      parties.map((p) => moneyTd(amount.get(`${fy}|${p}`) || '0', { party: p, fy })),
      moneyTd(groups[years.indexOf(fy)].total),
    ),
  );
  const totals = parties.map((p) => sumMoney(years.map((fy) => amount.get(`${fy}|${p}`) || '0')));
  table(
    $('#ov-party-table'),
    [th('fiscal year'), parties.map((p) => th(p, true)), th(`total (${report.currency})`, true)],
    body,
    el('tr', {}, el('th', { scope: 'row', text: 'total' }), totals.map((t, i) => moneyTd(t, { partyTotal: parties[i] })), moneyTd(sumMoney(totals))),
  );
  renderCeilings($('#ov-ceilings'), ceilings);
}

// ---------- costs ----------

const COST_DIMS = ['fiscal_year', 'category', 'site', 'party'];
const costs = { rows: null, drill: null };

async function renderCosts(params) {
  const report = await cached('/api/v1/report?by=fiscal_year,category,site,party&format=json');
  const rows = report.rows || [];
  const form = $('#costs-filters');
  for (const d of COST_DIMS) {
    const sel = form.elements[d];
    const values = [...new Set(rows.map((r) => r[d] ?? ''))].sort();
    const want = params.get(d) || '';
    clear(sel).append(el('option', { value: '', text: 'all' }), ...values.map((v) => el('option', { value: v, text: v === '' ? '(none)' : v })));
    sel.value = values.includes(want) ? want : '';
  }
  const sort = COST_DIMS.concat('amount').includes(params.get('sort')) ? params.get('sort') : null;
  const dir = params.get('dir') === 'desc' ? 'desc' : 'asc';
  const filtered = rows.filter((r) => COST_DIMS.every((d) => !form.elements[d].value || (r[d] ?? '') === form.elements[d].value));
  if (sort) {
    filtered.sort((a, b) => {
      const c = sort === 'amount' ? cmpMoney(a.amount, b.amount) : String(a[sort] ?? '').localeCompare(String(b[sort] ?? ''));
      return dir === 'desc' ? -c : c;
    });
  }
  const head = COST_DIMS.concat('amount').map((d) => {
    const label = d === 'fiscal_year' ? 'fiscal year' : d === 'amount' ? `amount (${report.currency})` : d;
    const sorted = sort === d ? (dir === 'asc' ? 'ascending' : 'descending') : 'none';
    const next = sort === d && dir === 'asc' ? 'desc' : 'asc';
    const btn = el('button', {
      type: 'button',
      class: 'sort',
      text: label,
      'aria-label': `Sort by ${label}, ${next === 'asc' ? 'ascending' : 'descending'}`,
      onclick: () => {
        const p = route().params;
        p.set('sort', d);
        p.set('dir', next);
        setParams('costs', p);
        renderCosts(p).catch((e) => status(e.message, true));
      },
    });
    return el('th', { scope: 'col', class: d === 'amount' ? 'n' : undefined, 'aria-sort': sorted }, btn);
  });
  const body = filtered.map((r) =>
    el(
      'tr',
      { data: { fy: r.fiscal_year, category: r.category, site: r.site ?? '', party: r.party } },
      td(r.fiscal_year),
      td(r.category),
      td(dash(r.site)),
      td(r.party),
      el(
        'td',
        { class: 'n' },
        r.provisional ? el('span', { class: 'tag', text: 'provisional', title: 'in a pro-rata period not yet ended' }) : null,
        ' ',
        el('button', {
          type: 'button',
          class: 'link total',
          text: money(r.amount),
          'aria-label': `${money(r.amount)}: show the lines of ${r.party} ${r.fiscal_year} ${r.category} ${r.site ?? ''}`,
          onclick: (ev) => drill(r, ev.currentTarget.closest('tr')).catch((e) => {
            $('#lines-h').textContent = `Lines: the server did not answer (${e.message})`;
            status(e.message, true);
          }),
        }),
      ),
    ),
  );
  const total = sumMoney(filtered.map((r) => r.amount));
  table(
    $('#costs-table'),
    head,
    body,
    el('tr', {}, el('th', { scope: 'row', colspan: 4, text: `${filtered.length} rows` }), el('td', { class: 'n', id: 'costs-total', text: money(total) })),
  );
  $('#costs-summary').textContent = `${filtered.length} of ${rows.length} totals; click a total for its lines.`;
  // a link may name a line to explain (`line=ID`, set when a line is clicked)
  const line = params.get('line');
  if (line && $('#explain-h').dataset.line !== line) {
    try {
      await explain(line, false);
    } catch (e) {
      status(`Line ${line}: ${e.message}`, true);
    }
  }
}

function onCostsFilter() {
  const form = $('#costs-filters');
  const p = route().params;
  for (const d of COST_DIMS) {
    if (form.elements[d].value) p.set(d, form.elements[d].value);
    else p.delete(d);
  }
  p.delete('line');
  setParams('costs', p);
  $('#costs-lines').hidden = true;
  $('#costs-explain').hidden = true;
  delete $('#explain-h').dataset.line;
  renderCosts(p).catch((e) => status(e.message, true));
}

async function drill(row, tr) {
  for (const x of document.querySelectorAll('#costs-table tr.selected')) x.classList.remove('selected');
  tr?.classList.add('selected');
  $('#costs-explain').hidden = true;
  delete $('#explain-h').dataset.line;
  const p = route().params;
  if (p.has('line')) {
    p.delete('line');
    setParams('costs', p);
  }
  const box = $('#costs-lines');
  box.hidden = false;
  $('#lines-h').textContent = `Lines: ${row.party}, ${row.fiscal_year}, ${row.category}, ${row.site ?? '(no site)'} (loading…)`;
  const json = await cached(`/api/v1/allocate?format=json&period=${encodeURIComponent(row.fiscal_year)}`);
  const lines = (json.lines || []).filter(
    (l) => l.category === row.category && (l.site ?? '') === (row.site ?? '') && l.allocation && l.allocation[row.party] !== undefined && !isZeroMoney(l.allocation[row.party]),
  );
  const parts = lines.map((l) => l.allocation[row.party]);
  const sum = sumMoney(parts);
  $('#lines-h').textContent = `Lines: ${row.party}, ${row.fiscal_year}, ${row.category}, ${row.site ?? '(no site)'}`;
  table(
    $('#lines-table'),
    [th('line'), th('date'), th(`line amount (${json.currency})`, true), th(`${row.party}'s part`, true)],
    lines.map((l) =>
      el(
        'tr',
        {},
        el('td', {}, el('button', { type: 'button', class: 'link line', text: l.id, 'aria-label': `Explain line ${l.id}`, onclick: () => explain(l.id) })),
        td(l.date),
        moneyTd(l.amount),
        moneyTd(l.allocation[row.party]),
      ),
    ),
    el('tr', {}, el('th', { scope: 'row', colspan: 3, text: `${lines.length} lines` }), el('td', { class: 'n', id: 'lines-total', text: money(sum) })),
  );
  box.querySelector('button.line')?.focus();
}

async function explain(id, fromClick = true) {
  const x = await api(`/api/v1/explain?id=${encodeURIComponent(id)}&format=json`);
  if (fromClick) {
    const p = route().params;
    p.set('line', id);
    setParams('costs', p);
  }
  const box = $('#costs-explain');
  box.hidden = false;
  $('#explain-h').dataset.line = id;
  $('#explain-h').textContent = `Explanation of ${x.id}`;
  const dl = clear($('#explain-dl'));
  const kv = (k, v) => [el('dt', { text: k }), el('dd', { text: dash(v) })];
  const src = x.source && x.source.currency && x.source.rate ? ` (from ${money(x.source.amount)} ${x.source.currency} at ${x.source.rate})` : '';
  dl.append(
    ...kv('Date', `${x.date} (${x.fiscal_year})`),
    ...kv('Category', x.category),
    ...kv('Site', x.site),
    ...kv('Description', x.description),
    ...kv('Amount', money(x.amount) + src),
    ...kv('Quantity', x.quantity),
    ...kv('Result', Object.entries(x.result || {}).map(([p, v]) => `${p} ${money(v)}`).join(', ') + (x.provisional ? ' (provisional)' : '')),
  );
  const capText = (c) => {
    if (!c) return '—';
    const left = c.left_before !== undefined ? `: ${money(c.left_before)} left → ${money(c.left_after)}` : '';
    return `${c.policy || c.kind || ''} cap ${money(c.cap)}${left}`;
  };
  table(
    $('#explain-table'),
    [th('layer'), th('rule'), th('period'), th('before', true), th('offered', true), th('cap'), th('taken', true), th('split'), th('after', true)],
    (x.layers || []).map((l) =>
      el(
        'tr',
        { class: l.took_part ? undefined : 'muted' },
        td(String(l.layer)),
        td(l.rule),
        td(dash(l.period)),
        moneyTd(l.remaining_before),
        el('td', { class: 'n', text: money(l.offered) + (l.portion ? ` (portion ${l.portion})` : '') }),
        td(capText(l.cap)),
        moneyTd(l.take),
        td(Object.entries(l.split || {}).map(([p, v]) => `${p} ${money(v)}`).join(', ') || '—'),
        moneyTd(l.remaining_after),
      ),
    ),
  );
  $('#explain-h').setAttribute('tabindex', '-1');
  $('#explain-h').focus();
}

// ---------- compare ----------

async function renderCompare() {
  const sel = $('#compare-form').elements.example;
  if (sel.options.length <= 1) {
    const examples = await cached('/api/v1/examples');
    for (const x of examples || []) sel.append(el('option', { value: x.file, text: x.title ? `${x.title} (${x.file})` : x.file }));
  }
}

async function onCompare(ev) {
  ev.preventDefault();
  const f = ev.currentTarget.elements;
  const file = f.upload.files && f.upload.files[0];
  let against;
  try {
    if (file) against = { name: file.name, toml: await file.text() };
    else if (f.example.value) against = { name: f.example.value, toml: await api(`/api/v1/examples/${encodeURIComponent(f.example.value)}`) };
    else {
      status('Choose a built-in agreement or upload a TOML file.', true);
      return;
    }
    status('Comparing…');
    const json = await postJson('/api/v1/compare?format=json', { against: [against], by: f.by.value });
    status('');
    drawCompare(json);
  } catch (e) {
    status(`Compare failed: ${e.message}`, true);
  }
}

function drawCompare(json) {
  $('#compare-out').hidden = false;
  const dims = json.by || [];
  const names = (json.against || []).map((a) => a.id);
  const rows = json.rows || [];
  $('#compare-title').textContent = `Difference: ${json.agreement?.id} minus ${names.join(', ')} (${json.currency})`;
  const chartRows = [];
  for (const r of rows)
    for (const n of names) chartRows.push({ label: dims.map((d) => r[d]).join(' ') + (names.length > 1 ? ` vs ${n}` : ''), value: r.against?.[n]?.delta ?? '0' });
  const draw = () => deltaBars($('#compare-chart'), chartRows, `Difference per ${dims.join(' and ')}`);
  state.redraw.set('compare', draw);
  draw();
  const deltaTd = (s) => el('td', { class: `n ${signOf(s) < 0 ? 'neg' : signOf(s) > 0 ? 'pos' : ''}`, text: money(s) });
  table(
    $('#compare-table'),
    [dims.map((d) => th(dimLabel(d))), th(json.agreement?.id || 'this agreement', true), names.map((n) => [th(n, true), th(`difference vs ${n}`, true)])],
    rows.map((r) => el('tr', {}, dims.map((d) => td(dash(r[d]))), moneyTd(r.amount), names.map((n) => [moneyTd(r.against?.[n]?.amount), deltaTd(r.against?.[n]?.delta)]))),
    json.totals
      ? el(
          'tr',
          {},
          el('th', { scope: 'row', colspan: Math.max(1, dims.length), text: 'total' }),
          moneyTd(json.totals.amount),
          names.map((n) => [moneyTd(json.totals.against?.[n]?.amount), deltaTd(json.totals.against?.[n]?.delta)]),
        )
      : null,
  );
}

// ---------- what-if ----------

const whatif = { loaded: false, toml: '', result: null, seq: 0, timer: 0 };

async function renderWhatif() {
  $('#amend-form').hidden = state.whoami?.role !== 'admin';
  if (whatif.loaded) return;
  // figures of an earlier agreement never sit beside this one's form
  for (const id of ['#whatif-table', '#whatif-ceilings', '#whatif-summary', '#whatif-diag', '#whatif-warn']) clear($(id));
  $('#whatif-status').textContent = '';
  whatif.toml = await api('/api/v1/agreement');
  const s = agreementStructure(whatif.toml);
  const form = clear($('#whatif-form'));
  const input = (label, data, value) =>
    el(
      'label',
      {},
      el('span', { text: label }),
      el('input', {
        type: 'text',
        inputmode: 'decimal',
        value,
        autocomplete: 'off',
        spellcheck: 'false',
        data: Object.assign({ original: value }, data),
      }),
    );
  for (const c of s.categories) {
    const fs = el('fieldset', {}, el('legend', { text: c.id }));
    if (c.name && c.name !== c.id) fs.append(el('p', { class: 'muted', text: c.name }));
    c.layers.forEach((l, i) => {
      const layer = i + 1;
      const box = el('div', { class: 'layer' }, el('p', { text: `Layer ${layer}` + (l.period ? `, per ${l.period}` : '') + (l.key ? `, split by key ${l.key}` : '') }));
      const base = { category: c.id, layer };
      if (l.split) for (const [p, v] of Object.entries(l.split)) box.append(input(`${p} share`, Object.assign({ field: 'share', party: p }, base), v));
      if (l.portion !== null) box.append(input('portion', Object.assign({ field: 'portion' }, base), l.portion));
      if (l.cap !== null) box.append(input('cap', Object.assign({ field: 'cap' }, base), l.cap));
      if (l.capSchedule) for (const [fy, v] of Object.entries(l.capSchedule)) box.append(input(`${fy} cap`, Object.assign({ field: 'cap', fiscalYear: fy }, base), v));
      if (l.capUnits !== null) box.append(input('cap (units)', Object.assign({ field: 'cap_units' }, base), l.capUnits));
      fs.append(box);
    });
    form.append(fs);
  }
  whatif.loaded = true;
  runWhatif();
}

function whatifEdits() {
  const edits = [];
  for (const i of document.querySelectorAll('#whatif-form input')) {
    const changed = i.value.trim() !== i.dataset.original;
    i.classList.toggle('changed', changed);
    if (!changed) continue;
    const e = { category: i.dataset.category, layer: Number(i.dataset.layer), field: i.dataset.field, value: i.value.trim() };
    if (i.dataset.party) e.party = i.dataset.party;
    if (i.dataset.fiscalYear) e.fiscal_year = i.dataset.fiscalYear;
    edits.push(e);
  }
  return edits;
}

function scheduleWhatif() {
  clearTimeout(whatif.timer);
  whatif.timer = setTimeout(runWhatif, 150);
}

async function runWhatif() {
  const edits = whatifEdits();
  const seq = ++whatif.seq;
  $('#whatif-status').textContent = 'Recomputing…';
  $('#view-whatif').classList.add('busy');
  try {
    // no edits yet: the agreement in force itself, so the table shows today's figures
    const json = await postJson('/api/v1/whatif', edits.length ? { edits } : { agreement_toml: whatif.toml });
    if (seq !== whatif.seq) return; // a newer edit is on its way
    whatif.result = json;
    clear($('#whatif-diag'));
    const warn = clear($('#whatif-warn'));
    for (const d of [...(json.diagnostics || []), ...(json.warnings || [])])
      warn.append(el('li', { text: typeof d === 'string' ? d : d.message || JSON.stringify(d) }));
    drawWhatif(json, edits.length);
    $('#whatif-status').textContent = `${edits.length} edit${edits.length === 1 ? '' : 's'}; recomputed in ${json.elapsed_ms} ms.`;
    $('#whatif-status').dataset.seq = String(seq);
  } catch (e) {
    if (seq !== whatif.seq) return;
    whatif.result = null;
    $('#whatif-status').textContent = 'The edited agreement is not valid:';
    errorList($('#whatif-diag'), e);
  }
  if (seq === whatif.seq) $('#view-whatif').classList.remove('busy');
  const ok = !!whatif.result;
  $('#whatif-download').disabled = !ok;
  $('#amend-form button').disabled = !ok || edits.length === 0;
}

// The what-if answer: `totals`, one row per party and fiscal year with
// `amount` (under the what-if), `current` and `delta`; `ceilings` (rows as
// /api/v1/ceilings gives them) and `warnings`. (A compare-shaped `report`,
// amount against the first `against`, is read too.)
function whatifNow(r, cur) {
  const now = r.current ?? r.amount_against ?? r.against?.[cur]?.amount;
  const delta = r.delta ?? r.against?.[cur]?.delta ?? (now !== undefined ? subMoney(r.amount, now) : null);
  return { now, delta };
}

function drawWhatif(json, editCount) {
  const rep = json.report || {};
  const cur = (rep.against || []).map((a) => a.id || a.name)[0];
  const rows = Array.isArray(json.totals) ? json.totals : rep.rows || [];
  const dims = Array.isArray(json.totals) ? ['party', 'fiscal_year'] : rep.by || ['party', 'fiscal_year'];
  const currency = json.currency || rep.currency || '';
  const deltaTd = (s) => el('td', { class: `n delta ${signOf(s) < 0 ? 'neg' : signOf(s) > 0 ? 'pos' : ''}`, text: money(s ?? '') });
  const figures = rows.map((r) => Object.assign({ r }, whatifNow(r, cur)));
  const total = {
    amount: sumMoney(rows.map((r) => r.amount)),
    now: sumMoney(figures.map((f) => f.now ?? '0')),
    delta: sumMoney(figures.map((f) => f.delta ?? '0')),
  };
  table(
    $('#whatif-table'),
    [dims.map((d) => th(dimLabel(d))), th(`what-if (${currency})`, true), th('now', true), th('difference', true)],
    figures.map(({ r, now, delta }) =>
      el(
        'tr',
        { data: { party: r.party ?? '', fy: r.fiscal_year ?? '' } },
        dims.map((d) => td(dash(r[d]))),
        el('td', { class: 'n whatif', text: money(r.amount) }),
        moneyTd(now),
        deltaTd(delta),
      ),
    ),
    el('tr', {}, el('th', { scope: 'row', colspan: dims.length, text: 'total' }), moneyTd(total.amount), moneyTd(total.now), deltaTd(total.delta)),
  );
  const ceil = Array.isArray(json.ceilings) ? { ceilings: json.ceilings, currency } : json.ceilings;
  renderCeilings($('#whatif-ceilings'), ceil);
  $('#whatif-table').dataset.edits = String(editCount);
  // each party's difference over all years, in the bar that stays in view while editing
  const byParty = new Map();
  for (const { r, delta } of figures) {
    if (r.party === undefined || r.party === null) continue;
    if (!byParty.has(r.party)) byParty.set(r.party, []);
    byParty.get(r.party).push(delta ?? '0');
  }
  const summary = clear($('#whatif-summary'));
  if (byParty.size) summary.append(el('span', { class: 'muted', text: `Difference over all years (${currency}):` }));
  for (const [p, list] of byParty) {
    const d = sumMoney(list);
    const sign = signOf(d) > 0 ? '+' : '';
    summary.append(el('span', { class: signOf(d) < 0 ? 'neg' : signOf(d) > 0 ? 'pos' : '', data: { party: p } }, `${p} ${sign}${money(d)}`));
  }
}

function downloadAgreement() {
  if (!whatif.result) return;
  const blob = new Blob([whatif.result.agreement_toml], { type: 'application/toml' });
  const url = URL.createObjectURL(blob);
  const a = el('a', { href: url, download: `${state.info?.agreement?.id || 'agreement'}-whatif.toml` });
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 1000);
}

async function onAmend(ev) {
  ev.preventDefault();
  const out = $('#amend-status');
  if (!whatif.result) return;
  const effective = ev.currentTarget.elements.effective.value;
  try {
    const r = await postJson('/api/v1/amend', { agreement_toml: whatif.result.agreement_toml, effective });
    out.textContent =
      `Saved as an amendment effective ${effective}` +
      (r?.version !== undefined ? ` (version ${r.version})` : '') +
      '.' +
      (r?.journal?.head ? ` Journal head ${shortHash(r.journal.head)}.` : '');
    out.classList.remove('error');
    invalidate();
    await ensureSession();
  } catch (e) {
    out.textContent = `Not saved: ${e.message}`;
    out.classList.add('error');
  }
}

function resetWhatif() {
  for (const i of document.querySelectorAll('#whatif-form input')) i.value = i.dataset.original;
  runWhatif();
}

// ---------- record ----------

const record = { checked: null, file: null }; // file: the uploaded file's name while the box holds its text

async function renderRecord() {
  syncRecordButton();
}

function syncRecordButton() {
  // Record is offered once the text now in the box passed a dry run.
  $('#record-commit').disabled = record.checked === null || record.checked !== $('#record-csv').value;
}

async function postCosts(dryRun) {
  const text = $('#record-csv').value;
  const out = $('#record-out');
  const msg = $('#record-msg');
  const errs = clear($('#record-errors'));
  out.hidden = false;
  msg.className = '';
  if (!text.trim()) {
    msg.textContent = 'Paste or upload a costs CSV first.';
    msg.className = 'error';
    return;
  }
  msg.textContent = dryRun ? 'Checking…' : 'Recording…';
  try {
    const q = new URLSearchParams();
    if (dryRun) q.set('dry_run', 'true');
    if (record.file && record.file.text === text) q.set('file', record.file.name);
    const r = await api(`/api/v1/costs${q.size ? '?' + q : ''}`, { method: 'POST', headers: { 'Content-Type': 'text/csv' }, body: text });
    const counts = `${r.recorded} new, ${r.already} already there, ${r.voided} voided, ${r.dropped} dropped`;
    if (dryRun) {
      record.checked = text;
      msg.textContent = `Dry run passed: would record ${counts}. Nothing recorded yet.`;
      $('#record-out-h').textContent = 'Dry run';
    } else {
      record.checked = null;
      msg.textContent = `Recorded: ${counts}. Journal: ${r.journal?.entries} entries, head ${r.journal?.head}.`;
      $('#record-out-h').textContent = 'Recorded';
      invalidate();
      await ensureSession();
    }
    msg.className = 'ok';
  } catch (e) {
    if (e.status === 401) return;
    record.checked = null;
    $('#record-out-h').textContent = dryRun ? 'Dry run: problems' : 'Not recorded';
    msg.className = 'error';
    const rows = e.error?.rows;
    msg.textContent =
      Array.isArray(rows) && rows.length
        ? `${rows.length} bad row${rows.length === 1 ? '' : 's'}: fix ${rows.length === 1 ? 'it' : 'them'} and check again. Nothing was recorded.`
        : e.message;
    if (Array.isArray(rows) && rows.length)
      table(
        errs,
        [th('line', true), th('column'), th('id'), th('problem')],
        rows.map((r) => el('tr', { class: 'bad-row' }, td(dash(r.line), 'n'), td(dash(r.column)), td(dash(r.id)), td(dash(r.message)))),
      );
  }
  syncRecordButton();
  msg.focus();
}

// ---------- theme ----------

function applyTheme(theme) {
  const root = document.documentElement;
  if (theme) root.dataset.theme = theme;
  else delete root.dataset.theme;
  const dark = theme ? theme === 'dark' : matchMedia('(prefers-color-scheme: dark)').matches;
  const b = $('#theme-toggle');
  b.setAttribute('aria-pressed', String(dark));
  b.textContent = dark ? 'Light theme' : 'Dark theme';
  b.setAttribute('aria-label', dark ? 'Switch to the light theme' : 'Switch to the dark theme');
}

function toggleTheme() {
  const dark = $('#theme-toggle').getAttribute('aria-pressed') === 'true';
  const next = dark ? 'light' : 'dark';
  try {
    localStorage.setItem(THEME_KEY, next);
  } catch {
    /* storage may be off: the toggle still works for this page */
  }
  applyTheme(next);
}

// ---------- start ----------

const RENDER = { overview: renderOverview, costs: renderCosts, compare: renderCompare, whatif: renderWhatif, record: renderRecord };

function start() {
  let saved = null;
  try {
    saved = localStorage.getItem(THEME_KEY);
  } catch {
    saved = null;
  }
  applyTheme(saved === 'dark' || saved === 'light' ? saved : null);
  matchMedia('(prefers-color-scheme: dark)').addEventListener('change', () => applyTheme(document.documentElement.dataset.theme || null));
  $('#theme-toggle').addEventListener('click', toggleTheme);

  takeTokenFromUrl();
  $('#token-form').addEventListener('submit', (ev) => {
    ev.preventDefault();
    const t = $('#token-input').value.trim();
    if (!t) return;
    sessionStorage.setItem(TOKEN_KEY, t);
    $('#token-input').value = '';
    state.whoami = null;
    invalidate();
    show(true);
  });
  $('#sign-out').addEventListener('click', () => {
    sessionStorage.removeItem(TOKEN_KEY);
    state.whoami = null;
    invalidate();
    $('#who').textContent = '';
    showTokenBox('Token forgotten.');
  });
  document.querySelector('.skip').addEventListener('click', (ev) => {
    ev.preventDefault();
    $('#main').focus();
  });

  const filters = $('#costs-filters');
  filters.addEventListener('change', onCostsFilter);
  filters.addEventListener('reset', () => setTimeout(onCostsFilter, 0));
  $('#compare-form').addEventListener('submit', onCompare);
  $('#whatif-form').addEventListener('input', scheduleWhatif);
  $('#whatif-form').addEventListener('submit', (ev) => ev.preventDefault());
  $('#whatif-download').addEventListener('click', downloadAgreement);
  $('#whatif-reset').addEventListener('click', resetWhatif);
  $('#amend-form').addEventListener('submit', onAmend);
  $('#record-dry').addEventListener('click', () => postCosts(true));
  $('#record-form').addEventListener('submit', (ev) => {
    ev.preventDefault();
    postCosts(false);
  });
  $('#record-csv').addEventListener('input', syncRecordButton);
  $('#record-file').addEventListener('change', async (ev) => {
    const f = ev.currentTarget.files && ev.currentTarget.files[0];
    if (f) {
      const text = await f.text();
      $('#record-csv').value = text;
      record.file = { name: f.name, text };
      syncRecordButton();
    }
  });
  $('#record-msg').setAttribute('tabindex', '-1');

  let resizeTimer = 0;
  addEventListener('resize', () => {
    clearTimeout(resizeTimer);
    resizeTimer = setTimeout(() => {
      for (const [, draw] of state.redraw) draw();
    }, 150);
  });
  addEventListener('hashchange', () => {
    takeTokenFromUrl();
    show(true);
  });
  show(false);
}

start();
