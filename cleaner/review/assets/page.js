(function(){
const DATA = JSON.parse(document.getElementById('review-data').textContent);
const KEY = 'cxclean-review:' + DATA.scan_id;
let state = {};
try { state = JSON.parse(localStorage.getItem(KEY) || '{}'); } catch (e) { state = {}; }
state.keep = state.keep || {}; state.reviewed = state.reviewed || {};
function save(){ try { localStorage.setItem(KEY, JSON.stringify(state)); } catch (e) {} updateCount(); }
const pages = {};
const overlayBox = document.getElementById('overlay-toggle');
function k(path, reason){ return reason + '\u0000' + path; }
function fmt(v, d){ return (v === null || v === undefined) ? '?' : Number(v).toFixed(d); }
function imgSrc(it){ return (overlayBox.checked && it.overlay) ? it.overlay : it.thumb; }
function render(si){
  const sec = DATA.sections[si];
  const grid = document.getElementById('grid-' + si);
  const page = pages[si] || 0;
  const n = sec.items.length, size = DATA.page_size;
  const last = Math.max(0, Math.ceil(n / size) - 1);
  grid.textContent = '';
  sec.items.slice(page * size, (page + 1) * size).forEach(function(it, j){
    const card = document.createElement('div');
    card.className = 'card';
    card.dataset.path = it.path; card.dataset.reason = sec.reason;
    const a = document.createElement('a');
    if (it.full) { a.href = it.full; a.target = '_blank'; }
    const img = document.createElement('img');
    img.loading = 'lazy'; img.alt = it.path; img.className = 'thumb';
    img.dataset.thumb = it.thumb || ''; img.dataset.overlay = it.overlay || '';
    if (it.thumb) img.src = imgSrc(it);
    a.appendChild(img); card.appendChild(a);
    const meta = document.createElement('div'); meta.className = 'meta';
    const p = document.createElement('div'); p.textContent = '#' + (page * size + j + 1) + ' ' + it.path; meta.appendChild(p);
    const s = document.createElement('div');
    if (sec.detector) {
      const sc = document.createElement('span'); sc.className = 'score'; sc.textContent = 'score ' + fmt(it.score, 3);
      s.appendChild(sc); s.appendChild(document.createTextNode(' / threshold ' + fmt(sec.threshold, 3)));
    }
    s.appendChild(document.createTextNode((sec.detector ? ' · ' : '') + 'age ' + (it.age === null ? '?' : it.age) + ' · view ' + (it.view || '?')
      + (it.turn ? ' · turn ' + it.turn + '° clockwise to upright' : '')
      + (it.reasons.length > 1 ? ' · also: ' + it.reasons.filter(function(r){return r !== sec.reason;}).join(', ') : '')));
    meta.appendChild(s);
    if (it.error) { const e = document.createElement('div'); e.className = 'err'; e.textContent = it.error; meta.appendChild(e); }
    if (sec.detector) { const o = document.createElement('div'); o.className = 'ov'; o.textContent = it.overlay ? ('overlay: ' + (it.saliency === 'occlusion' ? 'occlusion sensitivity' : 'Grad-CAM')) : 'no overlay'; meta.appendChild(o); }
    card.appendChild(meta);
    const lab = document.createElement('label'); lab.className = 'keep';
    const box = document.createElement('input'); box.type = 'checkbox'; box.className = 'keep-box';
    box.checked = !!state.keep[k(it.path, sec.reason)];
    card.classList.toggle('kept', box.checked);
    box.addEventListener('change', function(){
      if (box.checked) state.keep[k(it.path, sec.reason)] = 1; else delete state.keep[k(it.path, sec.reason)];
      card.classList.toggle('kept', box.checked); save();
    });
    lab.appendChild(box); lab.appendChild(document.createTextNode(' keep (false positive)'));
    card.appendChild(lab);
    grid.appendChild(card);
  });
  document.getElementById('pageinfo-' + si).textContent = n ? ('page ' + (page + 1) + ' of ' + (last + 1) + ' (' + n + ' images)') : 'no images';
  document.getElementById('prev-' + si).disabled = page <= 0;
  document.getElementById('next-' + si).disabled = page >= last;
}
function build(){
  const main = document.getElementById('sections');
  DATA.sections.forEach(function(sec, si){
    const el = document.createElement('section'); el.id = 'sec-' + sec.folder;
    const h = document.createElement('h2');
    h.textContent = sec.reason + ' (' + sec.items.length + ')' + (sec.detector ? ' — detector ' + sec.version + ', threshold ' + fmt(sec.threshold, 3) + ', sorted by score' : ' — rule, youngest first');
    el.appendChild(h);
    const rv = document.createElement('label');
    const rb = document.createElement('input'); rb.type = 'checkbox'; rb.className = 'reviewed-box'; rb.dataset.reason = sec.reason;
    rb.checked = !!state.reviewed[sec.reason];
    rb.addEventListener('change', function(){ if (rb.checked) state.reviewed[sec.reason] = 1; else delete state.reviewed[sec.reason]; save(); });
    rv.appendChild(rb); rv.appendChild(document.createTextNode(' I reviewed this whole section: export the images not ticked as confirmed (exclude)'));
    el.appendChild(rv);
    const pager = document.createElement('div'); pager.className = 'pager';
    const prev = document.createElement('button'); prev.textContent = '◀ previous'; prev.id = 'prev-' + si;
    const next = document.createElement('button'); next.textContent = 'next ▶'; next.id = 'next-' + si;
    const info = document.createElement('span'); info.id = 'pageinfo-' + si;
    prev.onclick = function(){ pages[si] = (pages[si] || 0) - 1; render(si); el.scrollIntoView(); };
    next.onclick = function(){ pages[si] = (pages[si] || 0) + 1; render(si); el.scrollIntoView(); };
    pager.appendChild(prev); pager.appendChild(info); pager.appendChild(next);
    el.appendChild(pager);
    const grid = document.createElement('div'); grid.className = 'grid'; grid.id = 'grid-' + si;
    el.appendChild(grid);
    main.appendChild(el);
    render(si);
  });
}
function decisionsCsv(){
  const rows = ['path,reason,decision'];
  function q(v){ v = String(v); return /[",\n\r]/.test(v) ? '"' + v.replace(/"/g, '""') + '"' : v; }
  DATA.sections.forEach(function(sec){
    sec.items.forEach(function(it){
      if (state.keep[k(it.path, sec.reason)]) rows.push([q(it.path), q(sec.reason), 'keep'].join(','));
      else if (state.reviewed[sec.reason]) rows.push([q(it.path), q(sec.reason), 'exclude'].join(','));
    });
  });
  return rows.join('\n') + '\n';
}
function updateCount(){
  document.getElementById('kept-count').textContent = Object.keys(state.keep).length + ' kept';
}
overlayBox.addEventListener('change', function(){
  document.querySelectorAll('img.thumb').forEach(function(img){
    const src = (overlayBox.checked && img.dataset.overlay) ? img.dataset.overlay : img.dataset.thumb;
    if (src) img.setAttribute('src', src);
  });
});
document.getElementById('export').addEventListener('click', function(){
  const blob = new Blob([decisionsCsv()], {type: 'text/csv'});
  const a = document.createElement('a');
  a.href = URL.createObjectURL(blob); a.download = 'decisions.csv';
  document.body.appendChild(a); a.click();
  setTimeout(function(){ URL.revokeObjectURL(a.href); a.remove(); }, 1000);
});
window.cxcleanDecisionsCsv = decisionsCsv;
build(); updateCount();
})();
