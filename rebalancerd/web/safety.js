/* rebalancerd dashboard: the safety controls (kill switch, runs awaiting approval, forcing the
 * price-jump guard), maker execution figures in the history, and the notifications view.
 * app.js hands in its API call and refresh through RB.ctx (set before the first render). */
'use strict';
(function () {
  const RB = (window.RB = window.RB || {});
  const { h, fmt } = RB;
  const S = (RB.safety = {});
  const stale = new Map(); // run id -> what a 409 on approve said: shown on the card until it goes
  const ctx = () => RB.ctx;

  // ---- the kill switch

  /** The red banner of every page while halted; Resume for the full token. */
  S.haltBanner = function (status, canWrite) {
    if (!status.halted) return null;
    return h('div.halt-inner', {},
      h('p', {}, h('strong', { text: '■ Halted: the kill switch is set. ' }),
        'Nothing is traded by any daemon: no run starts, triggers and approvals are refused, and runs that were ' +
        'in flight stopped before their next order and cancelled their resting orders. It holds across restarts.'),
      canWrite ? h('button', { id: 'resume-button', type: 'button', text: 'Resume trading', onclick: () => S.setHalt(false) }) : null);
  };

  S.haltButton = function (status) {
    if (status.halted) return null;
    return h('button.danger', { id: 'halt-button', type: 'button', text: 'Halt all trading…', onclick: confirmHalt });
  };

  function confirmHalt() {
    const dialog = document.getElementById('dialog');
    const go = h('button.danger', { id: 'confirm-halt', type: 'button', text: 'Halt now' });
    const cancel = h('button', { type: 'button', text: 'Cancel', onclick: () => dialog.close() });
    dialog.replaceChildren(h('h2', { id: 'dialog-title', text: 'Halt all trading?' }),
      h('p', { text: 'Every daemon stops trading at once: runs in flight stop before their next order and cancel ' +
        'their orders still resting on the book; no run starts and no approval is accepted until you resume.' }),
      h('p.muted', { text: '"Stop scheduler" only stops new scheduled runs and lets running ones finish.' }),
      h('div.bar-row', {}, go, cancel));
    go.addEventListener('click', async () => { go.disabled = true; dialog.close(); await S.setHalt(true); });
    dialog.showModal();
    cancel.focus();
  }

  S.setHalt = async function (halted) {
    const res = await ctx().api('POST', '/api/scheduler', { action: halted ? 'halt' : 'resume' });
    if (!res.ok) ctx().notify(res.body.error);
    ctx().refresh();
  };

  // ---- a run awaiting approval, on its portfolio's card

  S.awaitingWhy = function (run) {
    const n = run.plan ? run.plan.orders.length : 0;
    return h('p.why.waiting', {}, `◆ Awaiting approval: ${n} order(s), run ${run.id}; expires `, RB.time(run.expiresAt, 'never'));
  };

  S.approvalBlock = function (run, canWrite) {
    const note = stale.get(run.id);
    const parts = [];
    if (note) {
      parts.push(h('p.result-bad', { role: 'status', text: '⚠ ' + note.error }));
      if (note.changes.length) parts.push(h('ul.changes', {}, note.changes.map((c) => h('li', { text: c }))));
    }
    parts.push(planTable(run.plan));
    if (canWrite) {
      const approve = h('button.primary', { type: 'button', class: 'approve', text: note ? 'Approve the new plan' : 'Approve' });
      const reject = h('button', { type: 'button', class: 'reject', text: 'Reject' });
      approve.addEventListener('click', () => decide(run, 'approve', approve, reject));
      reject.addEventListener('click', () => decide(run, 'reject', approve, reject));
      parts.push(h('div.bar-row', {}, approve, reject));
    }
    return h('div.approval', { 'data-run': run.id }, parts);
  };

  function planTable(plan) {
    if (!plan || !plan.orders.length) return h('p.muted', { text: 'The plan places no order.' });
    return h('div.table-wrap', {}, h('table.plan', {},
      h('caption.muted', { text: `Plan: ${fmt.eur(plan.value)} valued, fees about ${fmt.eur(plan.estimatedFees)}` }),
      h('thead', {}, h('tr', {}, ['Side', 'Asset', 'Volume', 'Value'].map((t, i) => h('th', { class: i > 1 ? 'num' : '', scope: 'col', text: t })))),
      h('tbody', {}, plan.orders.map((o) => h('tr', {}, h('td', { text: o.side }), h('td', { text: o.symbol }),
        h('td.num', { text: fmt.amount(o.volume) }), h('td.num', { text: fmt.eur(o.value) }))))));
  }

  async function decide(run, what, ...buttons) {
    for (const b of buttons) b.disabled = true;
    const res = await ctx().api('POST', `/api/runs/${encodeURIComponent(run.id)}/${what}`, {});
    if (res.status === 409 && res.body.run) {
      stale.set(run.id, { error: res.body.error, changes: res.body.changes || [] }); // the new plan waits
    } else {
      stale.delete(run.id);
      if (!res.ok || !res.body.success) ctx().notify(res.body.error || res.body.message);
    }
    ctx().refresh();
  }

  // ---- "Rebalance now": a run stopped by the price-jump guard may be forced

  S.isPriceJump = (run) => Boolean(run.body.history && (run.body.history.errors || []).some((e) => e.includes('price-jump guard')));

  S.forceOffer = function (onForce) {
    const box = h('input', { type: 'checkbox', id: 'force-ack' });
    const go = h('button.danger', { type: 'button', id: 'force-run', text: 'Run anyway, passing the guard', disabled: true });
    box.addEventListener('change', () => { go.disabled = !box.checked; });
    go.addEventListener('click', () => { go.disabled = true; onForce(); });
    return h('div.force', {},
      h('p.warn-text', { text: '⚠ A price moved more than this portfolio\'s price-jump guard allows since its last run. ' +
        'That can be a real move or a bad quote (a flash crash, a stale book). Forcing trades at today\'s prices and makes them the new reference.' }),
      h('p', {}, h('label.switch', { for: 'force-ack' }, box, 'I have checked the prices on the exchange')), go);
  };

  // ---- maker execution figures (issue 16) in the run history

  S.runCost = (r) => (r.executionCostBps === null || r.executionCostBps === undefined ? '' : ` · cost ${bp(r.executionCostBps)}`);

  S.hasExecution = (orders) => orders.some((o) => o.executionMode !== undefined);

  S.executionText = function (o) {
    if (o.executionMode === undefined) return '–';
    const parts = [o.executionMode];
    if (o.placements) parts.push(`${o.placements} placement${o.placements === 1 ? '' : 's'}`);
    if (o.fallback) parts.push('fell back' + (typeof o.fallback === 'string' ? ` (${o.fallback})` : ''));
    if (o.costBps !== null && o.costBps !== undefined) parts.push(bp(o.costBps));
    return parts.join(' · ');
  };

  const bp = (v) => `${fmt.amount(Number(Number(v).toFixed(1)))} bp`;

  // ---- notifications: recent webhook deliveries

  S.notificationsView = async function (main) {
    const res = await ctx().api('GET', '/api/notifications?limit=50');
    const head = [h('p', {}, h('a', { href: '#/', text: '← All portfolios' })), h('h1', { text: 'Notifications' })];
    if (!res.ok) { main.replaceChildren(...head, h('p.result-bad', { text: res.body.error })); return; }
    const rows = res.body.deliveries;
    if (!rows.length) {
      main.replaceChildren(...head, h('section.empty', { id: 'notifications-empty' },
        h('h2', { text: 'No deliveries yet' }),
        h('p', { text: 'The daemon sends events (a failed run, a plan awaiting approval, a halt…) to the webhooks in its ' +
          'configuration file. Add one and restart or reload the daemon:' }),
        h('pre', { text: '[[notify.webhook]]\nurl = "https://hooks.example/rebalancer"\nformat = "json"   # json | slack | discord | ntfy\nevents = ["run.failed", "run.awaiting_approval", "scheduler.halted"]' }),
        h('p.muted', { text: 'See "Notifications" in the README for signing secrets and retries.' })));
      return;
    }
    main.replaceChildren(...head, h('div.table-wrap', {}, h('table', { id: 'deliveries' },
      h('thead', {}, h('tr', {}, ['Event', 'Receiver', 'Status', 'Attempts', 'Last answer', 'Time'].map((t, i) =>
        h('th', { scope: 'col', class: (i === 3 ? 'num' : '') + (i === 1 || i === 4 ? ' hide-narrow' : ''), text: t })))),
      h('tbody', {}, rows.map(deliveryRow)))));
  };

  /** The portfolio (and run) an event is about, as a link to it. */
  function about(d) {
    if (!d.portfolioId) return null;
    const card = ctx().overview().portfolios.find((c) => c.portfolio.id === d.portfolioId);
    const name = card ? card.portfolio.name : d.portfolioId;
    return h('div.muted', {}, h('a', { href: `#/p/${encodeURIComponent(d.portfolioId)}`, text: name }),
      d.runId ? ` · run ${d.runId}` : '');
  }

  const STATUS = { delivered: ['✓ delivered', 'result-ok'], pending: ['… pending', 'warn-text'], given_up: ['✗ given up', 'result-bad'] };

  function deliveryRow(d) {
    const [text, cls] = STATUS[d.status] || [d.status, ''];
    const answer = [d.lastStatus ? `HTTP ${d.lastStatus}` : null, d.lastError].filter(Boolean).join(': ') || '–';
    return h('tr', { 'data-status': d.status },
      h('td', {}, d.type, about(d)), h('td.hide-narrow', { text: d.hook }),
      h('td', {}, h('span', { class: cls, text }), d.nextAttemptAt ? h('span.muted.hide-narrow', {}, ' · next try ', RB.time(d.nextAttemptAt)) : null),
      h('td.num', { text: String(d.attempts) }), h('td.hide-narrow', { text: answer }),
      h('td', {}, RB.time(d.createdAt)));
  }
})();
