/* rebalancerd dashboard: token gate, router, views, live updates (server-sent events). */
'use strict';
(function () {
  const { h, fmt } = window.RB;
  const TOKEN_KEY = 'rebalancerd.token';
  const main = document.getElementById('main');
  const statusEl = document.getElementById('status');
  const banner = document.getElementById('banner');
  const dialog = document.getElementById('dialog');
  const haltEl = document.getElementById('halt');
  const needsToken = document.documentElement.dataset.auth === 'token';
  const state = { shown: null, overview: null, updatedAt: 0, access: 'full', stream: null, lost: false, gate: false };

  // ---- the API: same origin, JSON bodies, the bearer token when there is one

  class Unauthorized extends Error {}

  async function api(method, path, body) {
    const headers = { Accept: 'application/json' };
    const token = sessionStorage.getItem(TOKEN_KEY);
    if (token) headers.Authorization = 'Bearer ' + token;
    if (body !== undefined) headers['Content-Type'] = 'application/json';
    const res = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body), cache: 'no-cache' });
    if (res.status === 401) {
      askForToken('The token was refused or has changed: enter it again.');
      throw new Unauthorized();
    }
    const json = await res.json().catch(() => ({ success: false, error: `HTTP ${res.status}` }));
    return { status: res.status, ok: res.ok, body: json };
  }

  // ---- token gate: no data before a token is accepted

  function askForToken(message) {
    state.gate = true;
    sessionStorage.removeItem(TOKEN_KEY);
    stopStream();
    statusEl.replaceChildren();
    const field = h('input', { id: 'token', type: 'password', autocomplete: 'current-password', required: true, 'aria-describedby': 'token-hint' });
    const form = h('form.gate', { 'aria-label': 'Sign in' },
      h('h1', { text: 'Sign in' }),
      message ? h('p.form-error', { role: 'alert', text: message }) : null,
      h('div.field', {}, h('label', { for: 'token', text: 'API token' }), field,
        h('span.hint', { id: 'token-hint', text: 'The daemon\'s http.api_token, or its read_token to look without changing anything. Kept for this browser tab only.' })),
      h('button.primary', { type: 'submit', text: 'Open dashboard' }));
    form.addEventListener('submit', (event) => {
      event.preventDefault();
      if (!field.value) return;
      sessionStorage.setItem(TOKEN_KEY, field.value.trim());
      state.gate = false;
      route();
    });
    main.replaceChildren(form);
    field.focus();
  }

  // ---- status strip

  function renderStatus() {
    const o = state.overview;
    if (!o) return;
    const s = o.status;
    const items = [
      h('li', {}, h('span.badge', { class: s.isRunning ? 'ok' : 'bad', text: s.isRunning ? '● running' : '■ stopped' })),
      s.halted ? h('li', {}, h('span.badge.bad', { id: 'halted-badge', text: '■ halted' })) : null,
      s.config.dryRunMode ? h('li', {}, h('span.badge.warn', { text: 'dry run: no orders placed' })) : null,
      state.access === 'read' ? h('li', {}, h('span.badge', { text: 'read-only' })) : null,
      h('li', {}, 'next wake ', h('strong', {}, RB.time(s.nextWakeAt, 'none'))),
      h('li', { title: 'this daemon and any other that ran something in the last 24 h' }, 'daemons seen (24 h) ', h('strong', { text: String(o.daemonsSeen) })),
      h('li', { id: 'updated' }, agoText()),
    ];
    statusEl.replaceChildren(...items.filter(Boolean));
    const halt = RB.safety.haltBanner(s, canWrite());
    haltEl.replaceChildren(...(halt ? [halt] : []));
    haltEl.hidden = !halt;
  }

  function agoText() {
    if (!state.updatedAt) return '';
    const s = Math.max(0, Math.round((Date.now() - state.updatedAt) / 1000));
    return `updated ${s} s ago`;
  }

  setInterval(() => {
    if (document.visibilityState !== 'visible') return;
    const el = document.getElementById('updated');
    if (el) el.textContent = agoText();
  }, 1000);

  /** What an action could not do: stays until the next navigation. */
  function notify(text) {
    const notice = document.getElementById('notice');
    notice.textContent = text || '';
    notice.hidden = !text;
  }

  function setBanner(text) {
    banner.hidden = !text;
    banner.textContent = text || '';
  }

  // ---- live updates: one server-sent event stream, read through fetch (it carries the token)

  let reconnectTimer = null;
  let refreshTimer = null;

  function stopStream() {
    if (state.stream) state.stream.abort();
    state.stream = null;
    clearTimeout(reconnectTimer);
  }

  async function listen() {
    if (state.stream || state.gate || document.visibilityState !== 'visible') return;
    const ctrl = new AbortController();
    state.stream = ctrl;
    let idle = null;
    const watchdog = () => { clearTimeout(idle); idle = setTimeout(() => ctrl.abort(), 40000); };
    try {
      const headers = { Accept: 'text/event-stream' };
      const token = sessionStorage.getItem(TOKEN_KEY);
      if (token) headers.Authorization = 'Bearer ' + token;
      const res = await fetch('/api/events', { headers, signal: ctrl.signal, cache: 'no-store' });
      if (res.status === 401) { askForToken('The token was refused or has changed: enter it again.'); return; }
      if (!res.ok || !res.body) throw new Error('HTTP ' + res.status);
      const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
      let buffer = '';
      watchdog();
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        watchdog();
        buffer += value;
        let cut;
        while ((cut = buffer.indexOf('\n\n')) >= 0) {
          const block = buffer.slice(0, cut);
          buffer = buffer.slice(cut + 2);
          if (/^event: (change|hello)$/m.test(block)) {
            if (state.lost) { state.lost = false; setBanner(''); }
            scheduleRefresh();
          }
        }
      }
      throw new Error('stream ended');
    } catch (err) {
      if (state.stream !== ctrl) return; // stopped on purpose
      state.lost = true;
      setBanner('Connection to the daemon lost; retrying… (the figures shown may be out of date)');
    } finally {
      clearTimeout(idle);
      if (state.stream === ctrl) {
        state.stream = null;
        if (state.lost) reconnectTimer = setTimeout(listen, 3000);
      }
    }
  }

  function scheduleRefresh() {
    clearTimeout(refreshTimer);
    refreshTimer = setTimeout(() => route({ quiet: true }), 100);
  }

  document.addEventListener('visibilitychange', () => {
    if (document.visibilityState === 'visible') { route({ quiet: true }); } else { stopStream(); clearTimeout(refreshTimer); }
  });

  // ---- router: #/ overview, #/p/ID portfolio, #/p/ID/run/HID a run, #/p/ID/edit, #/new

  let rendering = 0;
  async function route(opts) {
    if (opts && opts.quiet && document.visibilityState !== 'visible') return; // caught up when shown
    if (needsToken && !sessionStorage.getItem(TOKEN_KEY)) { askForToken(''); return; }
    const hash = location.hash.replace(/^#/, '') || '/';
    // A refresh only keeps what is on screen (a form being typed in) when it is this view.
    const quiet = Boolean(opts && opts.quiet) && state.shown === hash;
    const parts = hash.split('/').filter(Boolean).map(decodeURIComponent);
    const ticket = ++rendering;
    try {
      const overview = await api('GET', '/api/dashboard');
      if (!overview.ok) { setBanner(overview.body.error || 'The daemon did not answer'); return; }
      if (ticket !== rendering) return;
      state.overview = overview.body;
      state.access = overview.body.access;
      state.updatedAt = Date.now();
      document.body.classList.toggle('read-only', state.access === 'read');
      if (!state.lost) setBanner('');
      renderStatus();
      if (parts[0] !== 'p' || parts[2] === 'edit') { if (!quiet) releaseCharts(); }
      if (parts[0] === 'p' && parts[1]) {
        if (parts[2] === 'edit') await editView(parts[1], quiet);
        else await portfolioView(parts[1], parts[2] === 'run' ? parts[3] : null, quiet, ticket);
      } else if (parts[0] === 'notifications') {
        await RB.safety.notificationsView(main);
      } else if (parts[0] === 'new') {
        if (!quiet) createView();
      } else {
        overviewView();
      }
      state.shown = hash;
      listen();
    } catch (err) {
      if (err instanceof Unauthorized) return;
      state.lost = true;
      setBanner('Connection to the daemon lost; retrying…');
      reconnectTimer = setTimeout(() => { state.stream = null; route(opts); }, 3000);
    }
  }
  window.addEventListener('hashchange', async () => {
    notify('');
    await route();
    if (!location.hash.includes('/run/')) main.focus({ preventScroll: false }); // a new view: start reading there
  });

  const canWrite = () => state.access === 'full';
  RB.ctx = { api, notify, refresh: () => route({ quiet: true }), overview: () => state.overview }; // for safety.js

  // ---- overview

  function overviewView() {
    const o = state.overview;
    const s = o.status;
    const title = h('div.bar-row', {}, h('h1.grow', { text: 'Portfolios' }),
      canWrite() ? h('button', { id: 'scheduler-toggle', class: s.isRunning ? 'danger' : 'primary',
        text: s.isRunning ? 'Stop scheduler' : 'Start scheduler', onclick: () => control(s.isRunning ? 'stop' : 'start') }) : null,
      canWrite() ? RB.safety.haltButton(s) : null,
      h('a.button', { href: '#/notifications', text: 'Notifications' }),
      canWrite() ? h('a.button', { href: '#/new', text: 'New portfolio' }) : null);
    const totals = h('section.totals', { 'aria-label': 'Totals' },
      stat('Portfolios', String(o.portfolios.length), 'total-portfolios'),
      stat('Total value', fmt.eur(o.totalValue), 'total-value'),
      stat('Runs in the last 24 h', `${o.runs24h.succeeded} ok · ${o.runs24h.failed} failed` +
        (o.runs24h.rejected ? ` · ${o.runs24h.rejected} rejected` : ''), 'total-runs'));
    if (!o.portfolios.length) {
      main.replaceChildren(title, totals, h('section.empty', {},
        h('h2', { text: 'No portfolios yet' }),
        h('p', { text: `The daemon is ${s.isRunning ? 'running' : 'stopped'}${s.config.dryRunMode ? ' in dry-run mode (it plans and records, places no orders)' : ''}. ` +
          'Create a portfolio to tell it what to hold: name, target weights and how often to rebalance.' }),
        canWrite() ? h('a.button.primary', { href: '#/new', text: 'Create a portfolio (an example is filled in)' })
          : h('p.muted', { text: 'This token is read-only: someone with the API token can create one.' })));
      return;
    }
    const cards = h('ul.cards', { 'aria-label': 'Portfolios, those needing attention first' },
      o.portfolios.map(cardView));
    main.replaceChildren(title, totals, cards);
  }

  function stat(label, value, id) {
    return h('div.stat', {}, h('span.label', { text: label }), h('span.value', { id, text: value }));
  }

  function cardView(c) {
    const p = c.portfolio;
    const last = c.lastRun;
    const why = [];
    if (c.attention === 0) why.push('✗ Last run failed: ' + ((last.errors || [])[0] || 'see its history'));
    if (c.awaitingRun) why.push(RB.safety.awaitingWhy(c.awaitingRun));
    if (c.outsideBand) why.push(`⚠ Outside its drift band: ${c.largestDriftSymbol} ${fmt.pp(c.largestDrift)}`);
    return h('li.card', { class: 'attention-' + c.attention, 'data-portfolio': p.id },
      h('div.bar-row', {}, h('h2.grow', {}, h('a', { href: `#/p/${encodeURIComponent(p.id)}`, text: p.name })),
        h('span.badge', { class: p.rebalanceEnabled ? 'ok' : '', text: p.rebalanceEnabled ? 'enabled' : 'disabled' })),
      h('div.sub', { text: `account ${p.account} · ${c.snapshot ? fmt.eur(c.snapshot.value) : 'not valued yet'}` }),
      why.map((text) => (typeof text === 'string' ? h('p.why', { text }) : text)),
      c.awaitingRun ? RB.safety.approvalBlock(c.awaitingRun, canWrite()) : null,
      allocation(p.targetWeights, c.snapshot),
      h('dl', {},
        h('dt', { text: 'Largest drift' }), h('dd', { text: c.largestDrift === null ? '–' : `${c.largestDriftSymbol} ${fmt.pp(c.largestDrift)}${bandText(p)}` }),
        h('dt', { text: 'Schedule' }), h('dd', { text: p.rebalanceInterval }),
        h('dt', { text: 'Next run' }), h('dd', {}, p.rebalanceEnabled ? RB.time(p.nextRebalanceAt, 'not scheduled') : h('span.muted', { text: 'disabled' })),
        h('dt', { text: 'Last run' }), h('dd', {}, last ? lastRunText(last, p, c.lastRunRejected) : h('span.muted', { text: 'never' }))),
      canWrite() ? h('div.bar-row', {},
        h('button.primary', { text: 'Rebalance now…', onclick: () => rebalanceDialog(p) }),
        enableToggle(p)) : null);
  }

  function bandText(p) {
    if (p.driftBandAbs !== null) return ` (band ±${p.driftBandAbs} pp)`;
    if (p.driftBandRel !== null) return ` (band ±${p.driftBandRel} % of target)`;
    return '';
  }

  function lastRunText(run, p, rejected) {
    const [cls, text] = rejected ? ['muted', '– plan rejected'] : run.success ? ['result-ok', '✓ ok'] : ['result-bad', '✗ failed'];
    return h('a', { href: `#/p/${encodeURIComponent(p.id)}/run/${encodeURIComponent(run.id)}` },
      h('span', { class: cls, text }),
      run.dryRun ? ' (dry run) ' : ' ', RB.time(run.executedAt));
  }

  /** Target and current weights as two stacked bars with a text legend (colour is not alone). */
  function allocation(targets, snapshot) {
    const current = snapshot ? snapshot.weights : {};
    const symbols = [...new Set([...Object.keys(targets), ...Object.keys(current).filter((s) => current[s] > 0)])];
    const bar = (label, weights) => h('div.row', {}, h('span', { text: label }),
      h('div.stack', { role: 'img', 'aria-label': `${label}: ` + symbols.map((s) => `${s} ${fmt.pct(weights[s] || 0)}`).join(', ') },
        symbols.map((s) => {
          const seg = h('div.seg', { class: 'k' + RB.colourIndex(s), title: `${s} ${fmt.pct(weights[s] || 0)}` });
          seg.style.width = `${Math.max(0, Number(weights[s] || 0))}%`;
          return seg;
        })));
    return h('div.alloc', {},
      bar('Target', targets), bar('Current', current),
      h('ul.legend', { 'aria-hidden': 'true' }, symbols.map((s) => h('li', {}, h('span.swatch', { class: 'k' + RB.colourIndex(s) }),
        `${s} ${fmt.pct(targets[s] || 0)} → ${snapshot ? fmt.pct(current[s] || 0) : '?'}`))));
  }

  function enableToggle(p) {
    const box = h('input', { type: 'checkbox', id: `enable-${p.id}`, checked: p.rebalanceEnabled });
    box.addEventListener('change', async () => {
      box.disabled = true;
      const res = await api('PUT', '/api/portfolios/manage', { id: p.id, rebalanceEnabled: box.checked });
      if (!res.ok) { box.checked = !box.checked; notify(res.body.error); }
      box.disabled = false;
      route({ quiet: true });
    });
    return h('label.switch', { for: `enable-${p.id}` }, box, 'Enabled');
  }

  async function control(action) {
    const res = await api('POST', '/api/scheduler', { action });
    if (!res.ok) notify(res.body.error);
    route({ quiet: true });
  }

  // ---- rebalance now: preview, then confirm (with a dry-run choice)

  async function rebalanceDialog(p) {
    const title = h('h2', { id: 'dialog-title', text: `Rebalance ${p.name} now?` });
    const body = h('div', {}, h('p.muted', { text: 'Asking the exchange what a run would trade…' }));
    const close = h('button', { type: 'button', text: 'Cancel', onclick: () => dialog.close() });
    dialog.replaceChildren(title, body, h('div.bar-row', {}, close));
    dialog.showModal();
    const res = await api('GET', '/api/portfolios/plan?id=' + encodeURIComponent(p.id));
    if (!res.ok) { body.replaceChildren(h('p.result-bad', { text: res.body.error })); return; }
    const plan = res.body.plan;
    const dry = h('input', { type: 'checkbox', id: 'dry-run', checked: state.overview.status.config.dryRunMode });
    const confirm = h('button.primary', { type: 'button', id: 'confirm-run', text: 'Confirm' });
    body.replaceChildren(planView(res.body),
      h('p', {}, h('label.switch', { for: 'dry-run' }, dry, 'Dry run: plan and record, place no orders')));
    dialog.replaceChildren(title, body, h('div.bar-row', {}, confirm, close));
    if (!plan || plan.aborted) confirm.textContent = 'Run anyway (it will record why it cannot trade)';
    confirm.focus();
    const start = async (force) => {
      confirm.disabled = true;
      confirm.textContent = 'Running…';
      const run = await api('POST', '/api/scheduler/trigger', { portfolioId: p.id, dryRun: dry.checked, force });
      const ok = run.ok && run.body.success;
      const message = run.body.message || run.body.error;
      const errors = run.body.history && !ok ? run.body.history.errors || [] : [];
      body.replaceChildren(...[h('p', { class: ok ? 'result-ok' : 'result-bad', role: 'status', id: 'run-result', text: (ok ? '✓ ' : '✗ ') + message }),
        errors.length ? h('ul', {}, errors.map((e) => h('li.result-bad', { text: e }))) : null,
        run.status === 202 ? h('p', { text: 'Approve or reject it on its card in the overview.' }) : null,
        !ok && !force && RB.safety.isPriceJump(run) ? RB.safety.forceOffer(() => start(true)) : null,
        run.body.history ? h('p', {}, h('a', { href: `#/p/${encodeURIComponent(p.id)}/run/${encodeURIComponent(run.body.history.id)}`,
          onclick: () => dialog.close(), text: 'Open this run in the history' })) : null].filter(Boolean));
      confirm.remove();
      close.textContent = 'Close';
      close.focus();
      route({ quiet: true });
    };
    confirm.addEventListener('click', () => start(false));
  }

  function planView(preview) {
    const plan = preview.plan;
    if (!plan) return h('p.result-bad', { text: (preview.errors || []).join('; ') || 'No plan could be made.' });
    const parts = [h('p', { text: `Value ${fmt.eur(plan.value)} · ${plan.orders.length} order(s) · estimated fees ${fmt.eur(plan.estimatedFees)}` })];
    if (plan.aborted) parts.push(h('p.result-bad', { text: 'Nothing may be traded: ' + plan.aborted }));
    if (plan.orders.length) {
      parts.push(h('div.table-wrap', {}, h('table', {}, h('caption.muted', { text: 'Orders it would place' }),
        h('thead', {}, h('tr', {}, ['Side', 'Asset', 'Volume', 'Value', 'Fee'].map((t, i) => h('th', { class: i > 1 ? 'num' : '', scope: 'col', text: t })))),
        h('tbody', {}, plan.orders.map((o) => h('tr', {}, h('td', { text: o.side }), h('td', { text: o.symbol }),
          h('td.num', { text: fmt.amount(o.volume) }), h('td.num', { text: fmt.eur(o.value) }), h('td.num', { text: fmt.eur(o.fee) })))))));
    }
    if (plan.skipped.length) {
      parts.push(h('h3', { text: 'Skipped, and why' }), h('ul', {}, plan.skipped.map((s) =>
        h('li', { text: `${s.side} ${s.symbol} ${fmt.eur(s.value)}: ${s.reason}` }))));
    }
    if (!plan.orders.length && !plan.skipped.length && !plan.aborted) parts.push(h('p', { text: 'Nothing to trade: the portfolio is on target.' }));
    return h('div', {}, parts);
  }

  // ---- portfolio

  async function portfolioView(id, runId, quiet, ticket) {
    const card = state.overview.portfolios.find((c) => c.portfolio.id === id);
    if (!card) { main.replaceChildren(h('h1', { text: 'Not found' }), h('p', {}, 'No portfolio has this id. ', h('a', { href: '#/', text: 'Back to the overview' }))); return; }
    const p = card.portfolio;
    const enc = encodeURIComponent(id);
    const [snaps, history] = await Promise.all([
      api('GET', `/api/portfolios/${enc}/snapshots?limit=1000`),
      api('GET', `/api/history?portfolioId=${enc}&limit=100`),
    ]);
    if (ticket !== rendering) return;
    const scrollY = window.scrollY;
    const open = new Set([...main.querySelectorAll('details[open]')].map((d) => d.id));
    const view = h('div', {},
      h('p', {}, h('a', { href: '#/', text: '← All portfolios' })),
      h('div.bar-row', {}, h('h1.grow', { text: p.name }),
        canWrite() ? h('button.primary', { text: 'Rebalance now…', onclick: () => rebalanceDialog(p) }) : null,
        canWrite() ? enableToggle(p) : null,
        canWrite() ? h('a.button', { href: `#/p/${enc}/edit`, text: 'Edit' }) : null),
      h('p.muted', { text: `account ${p.account} · ${p.rebalanceInterval} · threshold ${fmt.eur(p.rebalanceThreshold)}${bandText(p)} · next run ` }, p.rebalanceEnabled ? RB.time(p.nextRebalanceAt, 'not scheduled') : 'disabled'),
      allocation(p.targetWeights, card.snapshot),
      h('h2', { text: 'Value and weights over time' }),
      charts(snaps.ok ? snaps.body.snapshots : [], p),
      h('h2', { text: 'Assets' }),
      assetTable(p, card.snapshot),
      h('h2', { id: 'history', text: 'Run history' }),
      historyTable(history.ok ? history.body.history : [], runId, open));
    releaseCharts();
    main.replaceChildren(view);
    if (runId && !quiet) {
      const row = document.getElementById('run-' + runId);
      if (row) row.scrollIntoView({ block: 'center' });
    } else if (quiet) {
      window.scrollTo(0, scrollY);
    }
  }

  function assetTable(p, snapshot) {
    const current = snapshot ? snapshot.weights : {};
    const holdings = snapshot ? snapshot.holdings : {};
    const symbols = [...new Set([...Object.keys(p.targetWeights), ...Object.keys(holdings)])];
    const rows = symbols.map((s) => {
      const target = Number(p.targetWeights[s] || 0);
      const cur = current[s];
      return h('tr', { 'data-symbol': s },
        h('th', { scope: 'row' }, h('span.swatch', { class: 'k' + RB.colourIndex(s) }), s),
        h('td.num', { 'data-col': 'target', text: fmt.pct(target) }),
        h('td.num', { 'data-col': 'current', text: cur === undefined ? '–' : fmt.pct(cur) }),
        h('td.num', { text: cur === undefined ? '–' : fmt.pp(cur - target) }),
        h('td.num.hide-narrow', { text: holdings[s] ? fmt.amount(holdings[s].amount) : '–' }),
        h('td.num', { text: holdings[s] ? fmt.eur(holdings[s].value) : '–' }));
    });
    return h('div', {},
      h('div.table-wrap', {}, h('table', { id: 'assets' },
        h('thead', {}, h('tr', {}, ['Asset', 'Target', 'Current', 'Drift', 'Amount', 'Value'].map((t, i) =>
          h('th', { scope: 'col', class: (i ? 'num' : '') + (i === 4 ? ' hide-narrow' : ''), text: t })))),
        h('tbody', {}, rows))),
      h('p.muted', {}, snapshot ? ['As of ', RB.time(snapshot.takenAt), ` (${snapshot.kind === 'tick' ? 'check tick' : snapshot.kind + ' a run'}). `] : 'Not valued yet. ',
        canWrite() ? h('button', { type: 'button', text: 'What would a run trade now?', onclick: () => rebalanceDialog(p) }) : null));
  }

  function historyTable(runs, selected, open) {
    if (!runs.length) return h('p.muted', { text: 'No runs yet.' });
    const rows = runs.map((r) => {
      const fees = r.orders.reduce((sum, o) => sum + Number(o.fee || 0), 0);
      const details = h('details', { id: 'run-' + r.id, open: String(r.id) === selected || open.has('run-' + r.id) },
        h('summary', {}, h('span', { class: r.success ? 'result-ok' : 'result-bad', text: r.success ? '✓ ok' : '✗ failed' }),
          r.dryRun ? ' dry run' : '', ' · ', RB.time(r.executedAt), ` · ${r.ordersExecuted}/${r.ordersPlanned} orders`, RB.safety.runCost(r)),
        runDetails(r));
      return h('tr', { class: String(r.id) === selected ? 'target-row' : '' },
        h('td', {}, details),
        h('td.num', { text: fmt.eur(r.portfolioValue) }),
        h('td.num', { text: fmt.eur(r.totalValueTraded) }),
        h('td.num.hide-narrow', { text: fmt.eur(fees) }),
        h('td.hide-narrow', { text: r.triggeredBy }));
    });
    return h('div.table-wrap', {}, h('table', { id: 'runs' },
      h('thead', {}, h('tr', {}, ['Run', 'Value', 'Traded', 'Fees', 'By'].map((t, i) =>
        h('th', { scope: 'col', class: (i && i < 4 ? 'num' : '') + (i > 2 ? ' hide-narrow' : ''), text: t })))),
      h('tbody', {}, rows)));
  }

  function runDetails(r) {
    const link = `${location.origin}${location.pathname}#/p/${encodeURIComponent(r.portfolioId)}/run/${encodeURIComponent(r.id)}`;
    const exec = RB.safety.hasExecution(r.orders); // maker execution figures, when recorded
    const heads = ['Side', 'Asset', 'Status', 'Volume', exec ? 'Avg price' : 'Price', 'Fee'].concat(exec ? ['Execution'] : []);
    return h('div', {},
      (r.errors || []).length ? h('ul', {}, r.errors.map((e) => h('li.result-bad', { text: e }))) : null,
      r.orders.length ? h('div.table-wrap', {}, h('table', {},
        h('thead', {}, h('tr', {}, heads.map((t, i) => h('th', { scope: 'col', class: i > 2 && i < 6 ? 'num' : '', text: t })))),
        h('tbody', {}, r.orders.map((o) => h('tr', {},
          h('td', { text: o.side }), h('td', { text: o.symbol }),
          h('td', { text: o.status + (o.error ? ': ' + o.error : '') }),
          h('td.num', { text: fmt.amount(o.volumeExecuted || o.volume) }),
          h('td.num', { text: fmt.eur(exec && o.avgPrice !== undefined ? o.avgPrice : o.price) }), h('td.num', { text: fmt.eur(o.fee) }),
          exec ? h('td.exec', { text: RB.safety.executionText(o) }) : null))))) : h('p.muted', { text: 'No orders.' }),
      h('p.muted', {}, `Took ${r.duration ?? '?'} ms. `, h('a', { href: link, text: 'Link to this run' })));
  }

  function charts(snaps, p) {
    const valueBox = h('div.chart', { id: 'chart-value' }, h('h3', { text: 'Value (EUR)' }));
    const weightBox = h('div.chart', { id: 'chart-weights' }, h('h3', { text: 'Weights (%)' }));
    const wrap = h('div.charts', {}, valueBox, weightBox);
    if (snaps.length < 2) {
      wrap.replaceChildren(h('p.muted', { text: 'Charts appear after two snapshots (each run and each check tick takes one).' }));
      return wrap;
    }
    const xs = snaps.map((s) => Date.parse(s.takenAt) / 1000);
    const symbols = [...new Set([...Object.keys(p.targetWeights), ...snaps.flatMap((s) => Object.keys(s.weights))])];
    requestAnimationFrame(() => {
      if (!window.uPlot) return;
      const axes = axisStyle();
      plot(valueBox, [xs, snaps.map((s) => s.value)], [{ label: 'Value', stroke: RB.colour('ETH'), width: 2, value: (u, v) => (v === null ? '–' : fmt.eur(v)) }], axes);
      plot(weightBox, [xs, ...symbols.map((s) => snaps.map((x) => x.weights[s] ?? 0))],
        symbols.map((s) => ({ label: s, stroke: RB.colour(s), width: 2, value: (u, v) => (v === null ? '–' : fmt.pct(v)) })), axes);
    });
    return wrap;
  }

  function axisStyle() {
    const css = getComputedStyle(document.documentElement);
    const text = css.getPropertyValue('--muted').trim();
    const grid = css.getPropertyValue('--line').trim();
    return [{ stroke: text, grid: { stroke: grid } }, { stroke: text, grid: { stroke: grid }, size: 60 }];
  }

  const charts_ = []; // the charts on screen, released before a view is drawn again

  function releaseCharts() {
    for (const { chart, observer } of charts_.splice(0)) { observer.disconnect(); chart.destroy(); }
  }

  function plot(box, data, series, axes) {
    const width = Math.max(200, box.clientWidth - 16);
    const chart = new window.uPlot({ width, height: 200, series: [{}, ...series], axes, legend: { live: false }, cursor: { drag: { x: false, y: false } } }, data, box);
    const observer = new ResizeObserver(() => chart.setSize({ width: Math.max(200, box.clientWidth - 16), height: 200 }));
    observer.observe(box);
    charts_.push({ chart, observer });
  }

  // ---- create and edit

  function createView() {
    const form = RB.portfolioForm(null, state.overview.accounts, async (body) => {
      const res = await api('POST', '/api/portfolios/manage', body);
      if (!res.ok) return res.body.error;
      location.hash = `#/p/${encodeURIComponent(res.body.portfolio.id)}`;
      return null;
    });
    main.replaceChildren(h('p', {}, h('a', { href: '#/', text: '← All portfolios' })), h('h1', { text: 'New portfolio' }), form);
  }

  async function editView(id, quiet) {
    if (quiet) return; // never wipe what is being typed
    const card = state.overview.portfolios.find((c) => c.portfolio.id === id);
    if (!card) { location.hash = '#/'; return; }
    const form = RB.portfolioForm(card.portfolio, state.overview.accounts, async (body) => {
      const res = await api('PUT', '/api/portfolios/manage', body);
      if (!res.ok) return res.body.error;
      location.hash = `#/p/${encodeURIComponent(id)}`;
      return null;
    });
    main.replaceChildren(h('p', {}, h('a', { href: `#/p/${encodeURIComponent(id)}`, text: '← Back' })), h('h1', { text: `Edit ${card.portfolio.name}` }), form);
  }

  route();
})();
