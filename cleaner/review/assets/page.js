(function(){
'use strict';
// The review page: every (image, reason) pair is a card; only the current page of the filtered list is in
// the DOM, so 20,000 flagged films load as fast as 200. Decisions are kept per (path, reason) in
// localStorage and exported as decisions.csv (path,reason,decision), what `cxclean review apply` reads.
const DATA = JSON.parse(document.getElementById('review-data').textContent);
const KEY = 'cxclean-review:' + DATA.scan_id;
const $ = function(id){ return document.getElementById(id); };
let state = {};
try {
  state = JSON.parse(localStorage.getItem(KEY) || localStorage.getItem('cxclean-review:' + DATA.legacy_id) || '{}') || {};
} catch (e) { state = {}; }
state.decisions = state.decisions || {}; state.reviewed = state.reviewed || {};
if (state.keep) {  // pages built before decisions had two values kept only the ticks
  Object.keys(state.keep).forEach(function(k){ state.decisions[k] = 'keep'; });
  delete state.keep;
}
function save(){ try { localStorage.setItem(KEY, JSON.stringify(state)); } catch (e) {} updateCounts(); }
function pairKey(path, reason){ return reason + '\u0000' + path; }
function site(path){ const i = path.indexOf('/'); return i < 0 ? '(top level)' : path.slice(0, i); }
function fmt(v, d){ return (v === null || v === undefined) ? '?' : Number(v).toFixed(d); }
// a relative link whose every path segment is URL-encoded: names may hold '#', '?', '%', spaces, backslashes
function href(rel){ return rel.split('/').map(encodeURIComponent).join('/'); }

const ALL = [];
DATA.sections.forEach(function(sec){
  sec.items.forEach(function(it){
    ALL.push({sec: sec, it: it, key: pairKey(it.path, sec.reason), site: site(it.path)});
  });
});
let shown = ALL, page = 0, focus = 0;
const size = DATA.page_size;
const overlayBox = $('overlay-toggle');

function decision(c){
  const d = state.decisions[c.key];
  if (d) return d;
  return state.reviewed[c.sec.reason] ? 'exclude' : 'undecided';
}
function imgSrc(c){ return href((overlayBox.checked && c.it.overlay) ? c.it.overlay : c.it.thumb); }
const METHODS = {'gradcam': 'Grad-CAM', 'gradcam+markers': 'Grad-CAM + side markers read', 'markers': 'side markers read',
                 'gradcam+no-marker': 'Grad-CAM; no side marker read', 'gradient': 'input gradient',
                 'occlusion': 'occlusion sensitivity'};

function card(c, n){
  const it = c.it, sec = c.sec;
  const el = document.createElement('div');
  el.className = 'card'; el.dataset.path = it.path; el.dataset.reason = sec.reason; el.dataset.n = n;
  const a = document.createElement('a'); a.className = 'full';
  if (it.full) { a.href = href(it.full); a.target = '_blank'; }
  if (it.thumb) {
    const img = document.createElement('img');
    img.loading = 'lazy'; img.alt = it.path; img.className = 'thumb'; img.src = imgSrc(c);
    a.appendChild(img);
  }
  el.appendChild(a);
  const meta = document.createElement('div'); meta.className = 'meta';
  const p = document.createElement('div');
  const r = document.createElement('span'); r.className = 'reason'; r.textContent = sec.reason;
  p.appendChild(document.createTextNode('#' + (n + 1) + ' ')); p.appendChild(r);
  p.appendChild(document.createTextNode(' ' + it.path)); meta.appendChild(p);
  const s = document.createElement('div');
  if (sec.detector) {
    const sc = document.createElement('span'); sc.className = 'score'; sc.textContent = 'score ' + fmt(it.score, 3);
    s.appendChild(sc); s.appendChild(document.createTextNode(' / threshold ' + fmt(sec.threshold, 3) + ' · '));
  }
  s.appendChild(document.createTextNode('age ' + (it.age === null ? '?' : it.age) + ' · view ' + (it.view || '?')
    + (it.turn ? ' · turn ' + it.turn + '° clockwise to upright' : '')
    + (it.reasons.length > 1 ? ' · also: ' + it.reasons.filter(function(x){ return x !== sec.reason; }).join(', ') : '')));
  meta.appendChild(s);
  if (it.error) { const e = document.createElement('div'); e.className = 'err'; e.textContent = 'unreadable: ' + it.error; meta.appendChild(e); }
  if (sec.detector) {
    const o = document.createElement('div'); o.className = 'ov';
    o.textContent = it.overlay ? 'overlay: ' + (METHODS[it.saliency] || it.saliency || 'saliency') : 'no overlay';
    meta.appendChild(o);
  }
  el.appendChild(meta);
  const d = document.createElement('div'); d.className = 'decide';
  [['keep-btn', 'keep', 'keep'], ['confirm-btn', 'confirm', 'exclude']].forEach(function(b){
    const btn = document.createElement('button'); btn.type = 'button'; btn.className = b[0]; btn.textContent = b[1];
    btn.addEventListener('click', function(){ focus = n; decide(b[2], false); });
    d.appendChild(btn);
  });
  const lab = document.createElement('span'); lab.className = 'dec'; d.appendChild(lab);
  el.appendChild(d);
  paint(el, c);
  el.addEventListener('click', function(ev){ if (ev.target.tagName !== 'BUTTON' && !ev.target.closest('a')) setFocus(n); });
  return el;
}
function paint(el, c){
  const d = decision(c), explicit = !!state.decisions[c.key];
  el.classList.toggle('keep', d === 'keep'); el.classList.toggle('exclude', d === 'exclude');
  el.classList.toggle('implied', d === 'exclude' && !explicit);
  el.querySelector('.dec').textContent = d === 'keep' ? 'kept (false positive)'
    : d === 'exclude' ? (explicit ? 'confirmed' : 'confirmed (rest of reason)') : '';
}
function cardEl(n){ return document.querySelector('#grid .card[data-n="' + n + '"]'); }

function render(){
  const last = Math.max(0, Math.ceil(shown.length / size) - 1);
  page = Math.min(Math.max(0, page), last);
  const grid = $('grid'), frag = document.createDocumentFragment();
  for (let n = page * size; n < Math.min(shown.length, (page + 1) * size); n++) frag.appendChild(card(shown[n], n));
  grid.textContent = ''; grid.appendChild(frag);
  const info = shown.length ? 'page ' + (page + 1) + ' of ' + (last + 1) + ' (' + shown.length + ' of ' + ALL.length + ' cards)'
    : (ALL.length ? 'no card matches the filters' : 'nothing was flagged');
  ['', '-2'].forEach(function(sfx){
    $('pageinfo' + sfx).textContent = info;
    $('prev-page' + sfx).disabled = page <= 0; $('next-page' + sfx).disabled = page >= last;
  });
  const f = cardEl(focus); if (f) f.classList.add('focus');
}
function setFocus(n, scroll){
  if (!shown.length) return;
  n = Math.min(Math.max(0, n), shown.length - 1);
  const old = cardEl(focus); if (old) old.classList.remove('focus');
  focus = n;
  if (Math.floor(n / size) !== page) { page = Math.floor(n / size); render(); }
  const el = cardEl(n);
  if (el) { el.classList.add('focus'); if (scroll !== false) el.scrollIntoView({block: 'nearest'}); }
}
function gotoPage(p){ page = p; render(); setFocus(page * size, false); window.scrollTo(0, 0); }
function decide(value, advance){
  const c = shown[focus]; if (!c) return;
  if (value === null || state.decisions[c.key] === value) delete state.decisions[c.key];
  else state.decisions[c.key] = value;
  save();
  const el = cardEl(focus); if (el) paint(el, c);
  if (advance) setFocus(focus + 1);
}
function applyFilters(){
  const reason = $('f-reason').value, st = $('f-site').value, dec = $('f-decision').value;
  const lo = $('f-min').value === '' ? null : Number($('f-min').value);
  const hi = $('f-max').value === '' ? null : Number($('f-max').value);
  shown = ALL.filter(function(c){
    if (reason && c.sec.reason !== reason) return false;
    if (st && c.site !== st) return false;
    if (lo !== null || hi !== null) {
      const s = c.it.score;
      if (s === null || s === undefined || (lo !== null && s < lo) || (hi !== null && s > hi)) return false;
    }
    return !dec || decision(c) === dec;
  });
  page = 0; focus = 0; render();
}
function fillSelect(sel, values){
  values.forEach(function(v){ const o = document.createElement('option'); o.value = v[0]; o.textContent = v[1]; sel.appendChild(o); });
}
function buildControls(){
  fillSelect($('f-reason'), DATA.sections.map(function(s){ return [s.reason, s.reason + ' (' + s.items.length + ')']; }));
  const sites = {};
  ALL.forEach(function(c){ sites[c.site] = (sites[c.site] || 0) + 1; });
  fillSelect($('f-site'), Object.keys(sites).sort().map(function(s){ return [s, s + ' (' + sites[s] + ')']; }));
  ['f-reason', 'f-site', 'f-decision', 'f-min', 'f-max'].forEach(function(id){
    $(id).addEventListener(id.startsWith('f-m') ? 'input' : 'change', applyFilters);
  });
  const box = $('sections');
  DATA.sections.forEach(function(sec){
    const lab = document.createElement('label');
    const rb = document.createElement('input'); rb.type = 'checkbox'; rb.className = 'reviewed-box'; rb.dataset.reason = sec.reason;
    rb.checked = !!state.reviewed[sec.reason];
    rb.addEventListener('change', function(){
      if (rb.checked) state.reviewed[sec.reason] = 1; else delete state.reviewed[sec.reason];
      save(); render();
    });
    lab.appendChild(rb);
    lab.appendChild(document.createTextNode(' ' + sec.reason + ' (' + sec.items.length + ')'
      + (sec.detector ? ': detector ' + sec.version + ', threshold ' + fmt(sec.threshold, 3) : ': rule, youngest first')
      + ' · confirm the rest (images left undecided are exported as exclude)'));
    box.appendChild(lab);
  });
  [['prev-page', -1], ['next-page', 1]].forEach(function(b){
    ['', '-2'].forEach(function(sfx){ $(b[0] + sfx).addEventListener('click', function(){ gotoPage(page + b[1]); }); });
  });
}
function updateCounts(){
  let keep = 0, excl = 0;
  ALL.forEach(function(c){ const d = decision(c); if (d === 'keep') keep++; else if (d === 'exclude') excl++; });
  $('counts').textContent = keep + ' kept · ' + excl + ' confirmed · ' + (ALL.length - keep - excl) + ' undecided';
}
function decisionsCsv(){
  const rows = ['path,reason,decision'];
  function q(v){ v = String(v); return /[",\n\r]/.test(v) ? '"' + v.replace(/"/g, '""') + '"' : v; }
  ALL.forEach(function(c){
    const d = decision(c);
    if (d !== 'undecided') rows.push([q(c.it.path), q(c.sec.reason), d].join(','));
  });
  return rows.join('\n') + '\n';
}
function openFull(){
  const c = shown[focus];
  if (c && c.it.full) window.open(href(c.it.full), '_blank');
}
overlayBox.addEventListener('change', function(){
  document.querySelectorAll('#grid .card').forEach(function(el){
    const img = el.querySelector('img.thumb'); if (img) img.src = imgSrc(shown[Number(el.dataset.n)]);
  });
});
document.addEventListener('keydown', function(ev){
  if (ev.ctrlKey || ev.metaKey || ev.altKey || /^(INPUT|SELECT|TEXTAREA)$/.test(ev.target.tagName)) return;
  const acts = {
    ArrowRight: function(){ setFocus(focus + 1); }, n: function(){ setFocus(focus + 1); },
    ArrowLeft: function(){ setFocus(focus - 1); }, p: function(){ setFocus(focus - 1); },
    k: function(){ decide('keep', true); }, c: function(){ decide('exclude', true); }, u: function(){ decide(null, false); },
    o: function(){ overlayBox.click(); }, Enter: openFull,
    PageDown: function(){ if (!$('next-page').disabled) gotoPage(page + 1); },
    PageUp: function(){ if (!$('prev-page').disabled) gotoPage(page - 1); }
  };
  const act = acts[ev.key];
  if (act) { ev.preventDefault(); act(); }
});
$('export').addEventListener('click', function(){
  const blob = new Blob([decisionsCsv()], {type: 'text/csv'});
  const a = document.createElement('a');
  a.href = URL.createObjectURL(blob); a.download = 'decisions.csv';
  document.body.appendChild(a); a.click();
  setTimeout(function(){ URL.revokeObjectURL(a.href); a.remove(); }, 1000);
});
window.cxcleanDecisionsCsv = decisionsCsv;
buildControls(); render(); updateCounts();
window.cxcleanReady = performance.now();  // ms from navigation start to a usable page
})();
