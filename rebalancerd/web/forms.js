/* rebalancerd dashboard: DOM helper, formatting, and the data-driven portfolio form.
 * A feature adds its portfolio field with one entry in FIELDS (key = the API's camelCase name). */
'use strict';
(function () {
  const RB = (window.RB = window.RB || {});

  /** h('tag.class', {attr: value, onclick: fn}, child...): an element; text is never HTML. */
  function h(spec, attrs, ...children) {
    const [tag, ...classes] = spec.split('.');
    const el = document.createElement(tag || 'div');
    if (classes.length) el.className = classes.join(' ');
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === undefined || v === null || v === false) continue;
      if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
      else if (k === 'text') el.textContent = v;
      else if (k === 'class') el.className += ' ' + v;
      else if (k in el && typeof v !== 'string') el[k] = v;
      else el.setAttribute(k, v === true ? '' : String(v));
    }
    for (const c of children.flat()) {
      if (c === null || c === undefined || c === false) continue;
      el.append(c instanceof Node ? c : document.createTextNode(String(c)));
    }
    return el;
  }
  RB.h = h;

  const eur = new Intl.NumberFormat(undefined, { style: 'currency', currency: 'EUR' });
  const pct = new Intl.NumberFormat(undefined, { style: 'percent', minimumFractionDigits: 1, maximumFractionDigits: 1 });
  const pp = new Intl.NumberFormat(undefined, { minimumFractionDigits: 1, maximumFractionDigits: 1, signDisplay: 'exceptZero' });
  const amount = new Intl.NumberFormat(undefined, { maximumSignificantDigits: 8 });
  RB.fmt = {
    eur: (v) => (v === null || v === undefined || v === '' ? '–' : eur.format(Number(v))),
    pct: (v) => (v === null || v === undefined ? '–' : pct.format(Number(v) / 100)),
    pp: (v) => (v === null || v === undefined ? '–' : pp.format(Number(v)) + ' pp'),
    amount: (v) => (v === null || v === undefined ? '–' : amount.format(Number(v))),
  };
  /** A <time> in the browser's zone with UTC on hover. */
  RB.time = function (iso, empty) {
    if (!iso) return h('span.muted', { text: empty || '–' });
    const d = new Date(iso);
    return h('time', { datetime: iso, title: d.toISOString().replace('T', ' ').replace(/\.\d+Z$/, ' UTC'),
      text: d.toLocaleString(undefined, { dateStyle: 'medium', timeStyle: 'short' }) });
  };

  // Colour per asset, the same in every view: known symbols fixed, others by a stable hash.
  const FIXED = { BTC: 0, ETH: 1, SOL: 2, ADA: 3, DOT: 4, XRP: 5, DOGE: 6, EUR: 7 };
  RB.colourIndex = function (symbol) {
    if (symbol in FIXED) return FIXED[symbol];
    let n = 0;
    for (const ch of symbol) n = (n * 31 + ch.charCodeAt(0)) % 7;
    return n;
  };
  RB.colour = function (symbol) {
    return getComputedStyle(document.documentElement).getPropertyValue('--c' + RB.colourIndex(symbol)).trim();
  };

  // ---- the next run times of what is typed in the interval field (the daemon decides; UTC)

  const STEPS = { hourly: 3600e3, daily: 864e5, weekly: 6048e5 };

  function cronField(text, lo, hi) {
    const allowed = new Set();
    for (const part of text.split(',')) {
      const m = /^(\*|(\d+)(?:-(\d+))?)(?:\/(\d+))?$/.exec(part);
      if (!m) return null;
      const step = m[4] ? Number(m[4]) : 1;
      let from = lo;
      let to = hi;
      if (m[1] !== '*') { from = Number(m[2]); to = m[3] ? Number(m[3]) : (m[4] ? hi : from); }
      if (from < lo || to > hi || from > to || step < 1) return null;
      for (let v = from; v <= to; v += step) allowed.add(v);
    }
    return allowed;
  }

  /** The next `count` times of a fixed interval or a 5-field cron, from `now`; null if unread. */
  RB.nextRuns = function (text, count, now) {
    const t = text.trim().toLowerCase();
    if (t in STEPS) return Array.from({ length: count }, (_, i) => new Date(now.getTime() + i * STEPS[t]));
    if (t === 'monthly') {
      return Array.from({ length: count }, (_, i) => {
        const d = new Date(now.getTime());
        const day = d.getUTCDate();
        d.setUTCDate(1);
        d.setUTCMonth(d.getUTCMonth() + i);
        const last = new Date(Date.UTC(d.getUTCFullYear(), d.getUTCMonth() + 1, 0)).getUTCDate();
        d.setUTCDate(Math.min(day, last)); // the 31st clamps to the month's end
        return d;
      });
    }
    const f = t.split(/\s+/);
    if (f.length !== 5) return null;
    const [min, hour, dom, mon, dow] = [cronField(f[0], 0, 59), cronField(f[1], 0, 23),
      cronField(f[2], 1, 31), cronField(f[3], 1, 12), cronField(f[4], 0, 7)];
    if (!min || !hour || !dom || !mon || !dow) return null;
    if (dow.has(7)) dow.add(0);
    const domAny = f[2] === '*';
    const dowAny = f[4] === '*';
    const out = [];
    const d = new Date(Math.floor(now.getTime() / 60e3) * 60e3 + 60e3);
    for (let i = 0; i < 600000 && out.length < count; i += 1, d.setTime(d.getTime() + 60e3)) {
      if (!min.has(d.getUTCMinutes()) || !hour.has(d.getUTCHours()) || !mon.has(d.getUTCMonth() + 1)) continue;
      const dayOk = domAny || dowAny ? dom.has(d.getUTCDate()) && dow.has(d.getUTCDay())
        : dom.has(d.getUTCDate()) || dow.has(d.getUTCDay());
      if (dayOk) out.push(new Date(d.getTime()));
    }
    return out.length ? out : null;
  };

  const FIELDS = [
    { key: 'name', label: 'Name', type: 'text', example: 'My portfolio', required: true },
    { key: 'account', label: 'Account', type: 'account', example: 'default',
      hint: 'The exchange account it trades; one enabled portfolio per account.' },
    { key: 'targetWeights', label: 'Target weights', type: 'weights',
      example: { BTC: 40, ETH: 30, SOL: 20, ADA: 10 },
      hint: 'Percent of the portfolio per asset; EUR keeps a cash share. Must total 100.' },
    { key: 'rebalanceInterval', label: 'Interval', type: 'text', example: 'weekly',
      hint: 'hourly, daily, weekly, monthly, or a 5-field cron expression such as "0 9 * * 1" (UTC).' },
    { key: 'rebalanceThreshold', label: 'Threshold', type: 'number', unit: 'EUR', example: 10, min: 0, step: 'any',
      hint: 'Orders smaller than this are skipped.' },
    { key: 'maxOrdersPerRebalance', label: 'Max orders per run', type: 'number', min: 1, step: 1, optional: true,
      hint: 'Empty: no limit.' },
    { key: 'driftBandAbs', label: 'Drift band, absolute', type: 'number', unit: 'pp', min: 0, step: 'any', optional: true,
      hint: 'Between runs, rebalance when an asset is this many percentage points off its target.' },
    { key: 'driftBandRel', label: 'Drift band, relative', type: 'number', unit: '% of target', min: 0, step: 'any',
      optional: true, hint: 'The same as a share of the target (25 % of a 20 % target is 5 pp).' },
    // Maker execution (issue 16)
    { key: 'executionMode', label: 'Execution', type: 'select', options: ['market', 'maker'], example: 'market',
      hint: 'market: fill at once at the book; maker: rest each order as a post-only limit at the best price on its side (maker fee).' },
    { key: 'makerTimeoutSeconds', label: 'Maker timeout', type: 'number', unit: 's', min: 10, max: 3600, step: 1, example: 120,
      hint: 'How long a maker order may rest (10–3600 s).' },
    { key: 'maxSlippageBps', label: 'Max slippage', type: 'number', unit: 'bp', min: 0, step: 1, example: 50,
      hint: 'The fallback\'s cap through the mid, in basis points (0–1000).' },
    // Safety controls (issue 19)
    { key: 'approval', label: 'Approval', type: 'select', options: ['auto', 'manual'], example: 'auto',
      hint: 'auto: a run trades its plan at once; manual: the plan waits on its card for Approve or Reject.' },
    { key: 'approvalTtlSeconds', label: 'Approval expires after', type: 'number', unit: 's', min: 1, max: 604800, step: 1, example: 3600,
      hint: 'A plan not approved in this time is recorded as expired (1 s to a week).' },
    { key: 'approvalTolerancePct', label: 'Approval tolerance', type: 'number', unit: '%', min: 0, max: 100, step: 'any', example: 1,
      hint: 'Approving plans again at fresh prices; it trades only if every order is within this % of the portfolio value of the approved one, else the new plan waits for approval.' },
    { key: 'maxTradePercent', label: 'Max traded per run', type: 'number', unit: '% of value', min: 0, max: 200, step: 'any', optional: true,
      hint: 'The most one run trades, sells and buys together, as % of the portfolio value (up to 200); a bigger plan is scaled down. Empty: no cap.' },
    { key: 'sellMode', label: 'Selling', type: 'select', options: ['allow', 'never'], example: 'allow',
      hint: 'never: nothing is ever sold; drift is reduced only by buying under-weight assets with the cash there is (e.g. deposits).' },
    { key: 'priceJumpGuardPct', label: 'Price-jump guard', type: 'number', unit: '%', min: 0, max: 1000, step: 'any', example: 15, optional: true, nullIsOff: true,
      hint: 'If a price moved more than this since the daemon last recorded it (within the hour), the run places nothing and fails, naming the asset. Empty: off.' },
    { key: 'rebalanceEnabled', label: 'Enabled: run on its schedule', type: 'checkbox', example: false },
  ];
  RB.FIELDS = FIELDS;

  function input(field, value, accounts) {
    const id = 'f-' + field.key;
    const described = id + '-hint ' + id + '-error';
    if (field.type === 'checkbox') {
      return h('input', { type: 'checkbox', id, name: field.key, checked: Boolean(value), 'aria-describedby': described });
    }
    if (field.type === 'account' || field.type === 'select') {
      const options = field.type === 'account' ? accounts.map((a) => [a.name, `${a.name} (${a.mode})`])
        : field.options.map((o) => [o, o]);
      if (value && !options.some(([v]) => v === value)) options.push([value, value + ' (not configured)']);
      return h('select', { id, name: field.key, 'aria-describedby': described },
        options.map(([v, text]) => h('option', { value: v, selected: v === value, text })));
    }
    return h('input', { id, name: field.key, type: field.type === 'number' ? 'number' : 'text',
      inputmode: field.type === 'number' ? 'decimal' : undefined, min: field.min, max: field.max, step: field.step,
      required: field.required, value: value === null || value === undefined ? '' : String(value),
      'aria-describedby': described, autocomplete: 'off' });
  }

  function weightsEditor(field, value) {
    const rows = h('div.rows');
    const total = h('p.total', { id: 'f-targetWeights-total', 'aria-live': 'polite' });
    const box = h('fieldset.weights', { id: 'f-targetWeights', 'aria-describedby': 'f-targetWeights-hint f-targetWeights-error' },
      h('legend', { text: field.label }), rows, total,
      h('button', { type: 'button', text: 'Add asset', onclick: () => { addRow('', ''); update(); rows.lastChild.querySelector('input').focus(); } }));
    let n = 0;
    function addRow(symbol, weight) {
      n += 1;
      const sym = h('input.sym', { id: `w-sym-${n}`, value: symbol, autocomplete: 'off', 'aria-label': `Asset ${n} symbol`, oninput: update });
      const w = h('input.pct', { id: `w-pct-${n}`, type: 'number', min: 0, max: 100, step: 'any', inputmode: 'decimal',
        value: String(weight), 'aria-label': `Asset ${n} weight, percent`, oninput: update });
      const row = h('div.wrow', {}, sym, w, h('span.unit', { text: '%' }),
        h('button', { type: 'button', text: 'Remove', 'aria-label': `Remove asset ${n}`, onclick: () => { row.remove(); update(); } }));
      rows.append(row);
    }
    function update() {
      let sum = 0;
      for (const w of rows.querySelectorAll('input.pct')) sum += Number(w.value || 0);
      sum = Math.round(sum * 1e6) / 1e6;
      total.textContent = `Total: ${sum} % ` + (sum === 100 ? '✓' : `(must reach 100; ${sum < 100 ? 100 - sum + ' to go' : sum - 100 + ' too many'})`);
      total.className = 'total ' + (sum === 100 ? 'ok' : 'bad');
    }
    for (const [s, w] of Object.entries(value || {})) addRow(s, w);
    if (!rows.children.length) addRow('', '');
    update();
    box.collect = () => {
      const out = {};
      for (const row of rows.children) {
        const s = row.querySelector('input.sym').value.trim().toUpperCase();
        const w = row.querySelector('input.pct').value;
        if (s || w) out[s] = w === '' ? w : Number(w);
      }
      return out;
    };
    return box;
  }

  /** The create or edit form; `submit(body)` returns null or the API's error text. */
  RB.portfolioForm = function (portfolio, accounts, submit) {
    const editing = Boolean(portfolio);
    const form = h('form.edit', { novalidate: true, 'aria-label': editing ? 'Edit portfolio' : 'Create portfolio' });
    const general = h('p.form-error', { id: 'form-error', role: 'alert' });
    const controls = {};
    for (const field of FIELDS) {
      const value = editing ? portfolio[field.key] : field.example;
      const id = 'f-' + field.key;
      const hint = h('span.hint', { id: id + '-hint', text: field.hint || '' });
      const error = h('span.error', { id: id + '-error' });
      let control;
      let wrap;
      if (field.type === 'weights') {
        control = weightsEditor(field, value);
        wrap = h('div.field', { 'data-field': field.key }, control, hint, error);
      } else if (field.type === 'checkbox') {
        control = input(field, value, accounts);
        wrap = h('div.field', { 'data-field': field.key }, h('label.switch', { for: id }, control, field.label), hint, error);
      } else {
        control = input(field, value, accounts);
        wrap = h('div.field', { 'data-field': field.key }, h('label', { for: id, text: field.label }),
          control, field.unit ? h('span.unit', { text: field.unit }) : null, hint, error);
      }
      controls[field.key] = control;
      if (field.key === 'rebalanceInterval') wrap.append(intervalPreview(control));
      form.append(wrap);
    }
    const save = h('button.primary', { type: 'submit', text: editing ? 'Save changes' : 'Create portfolio' });
    form.append(general, h('div.bar-row', {}, save, h('a.button', { href: editing ? `#/p/${encodeURIComponent(portfolio.id)}` : '#/', text: 'Cancel' })));

    function body() {
      const out = editing ? { id: portfolio.id } : {};
      for (const field of FIELDS) {
        const c = controls[field.key];
        let v;
        if (field.type === 'weights') v = c.collect();
        else if (field.type === 'checkbox') v = c.checked;
        else if (field.type === 'number') v = c.value.trim() === '' ? null : Number(c.value);
        else v = c.value.trim();
        if (v === null && field.optional && !editing && !field.nullIsOff) continue; // the default
        if (v === null && !field.optional) v = c.value; // let the API name what is missing
        out[field.key] = v;
      }
      return out;
    }
    form.addEventListener('submit', async (event) => {
      event.preventDefault();
      save.disabled = true;
      clearErrors(form);
      const problem = await submit(body());
      save.disabled = false;
      if (problem) showErrors(form, problem);
    });
    return form;
  };

  function intervalPreview(control) {
    const out = h('span.hint', { id: 'f-rebalanceInterval-next', 'aria-live': 'polite' });
    const show = () => {
      const runs = RB.nextRuns(control.value, 3, new Date());
      out.textContent = runs ? 'If enabled now, it would run at: ' + runs.map((d) =>
        d.toLocaleString(undefined, { dateStyle: 'medium', timeStyle: 'short' })).join(' · ') : '';
    };
    control.addEventListener('input', show);
    show();
    return out;
  }

  function clearErrors(form) {
    for (const el of form.querySelectorAll('.error')) el.textContent = '';
    for (const el of form.querySelectorAll('[aria-invalid]')) el.removeAttribute('aria-invalid');
    form.querySelector('#form-error').textContent = '';
  }

  /** Put each "field: message" part of an API error next to its field; the rest on top. */
  function showErrors(form, message) {
    const general = [];
    let first = null;
    for (const part of message.split('; ')) {
      const m = /^([A-Za-z_]+)(?:\.[^:]*)?: (.*)$/.exec(part);
      const slot = m && form.querySelector(`#f-${m[1]}-error`);
      if (!slot) { general.push(part); continue; }
      slot.textContent = slot.textContent ? slot.textContent + '; ' + m[2] : m[2];
      const control = form.querySelector(`#f-${m[1]}`);
      if (control) control.setAttribute('aria-invalid', 'true');
      first = first || control;
    }
    form.querySelector('#form-error').textContent = general.join('; ');
    if (first) (first.matches('fieldset') ? first.querySelector('input') : first).focus();
  }
})();
