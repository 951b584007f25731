// The plan's task graph as SVG: tasks in columns by depth (a task right of everything it
// depends on), ordered within a column to keep edges short, coloured by status, the critical
// path (the longest chain of dependencies) marked. Drawn once per plan; later updates only
// change each node's status.

const NS = 'http://www.w3.org/2000/svg';
const W = 160, H = 34, GX = 46, GY = 14, PAD = 12;

function svg(tag, attrs = {}, ...children) {
  const e = document.createElementNS(NS, tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
  for (const c of children) e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return e;
}

// Depth of each task: 0 without dependencies, else one more than its deepest dependency.
function depths(tasks, byId) {
  const depth = new Map();
  const visit = (id, seen) => {
    if (depth.has(id)) return depth.get(id);
    if (seen.has(id)) return 0; // a cycle cannot be planned; never loop on one
    seen.add(id);
    const t = byId.get(id);
    const d = t ? Math.max(-1, ...t.depends_on.filter((x) => byId.has(x)).map((x) => visit(x, seen))) + 1 : 0;
    depth.set(id, d);
    return d;
  };
  for (const t of tasks) visit(t.id, new Set());
  return depth;
}

// The longest chain of dependencies, as a set of task ids and of "from>to" edges.
function criticalPath(tasks, byId, depth) {
  const nodes = new Set(), edges = new Set();
  let end = null;
  for (const t of tasks) if (!end || depth.get(t.id) > depth.get(end.id)) end = t;
  while (end) {
    nodes.add(end.id);
    const prev = end.depends_on.filter((x) => byId.has(x))
      .sort((a, b) => depth.get(b) - depth.get(a))[0];
    if (prev === undefined) break;
    edges.add(`${prev}>${end.id}`);
    end = byId.get(prev);
  }
  return { nodes, edges };
}

// Columns ordered by the barycentre of each task's neighbours, a few sweeps each way.
function order(tasks, byId, depth) {
  const cols = [];
  for (const t of tasks) (cols[depth.get(t.id)] ??= []).push(t.id);
  const dependents = new Map(tasks.map((t) => [t.id, []]));
  for (const t of tasks) for (const d of t.depends_on) dependents.get(d)?.push(t.id);
  const pos = new Map();
  const place = () => cols.forEach((c) => c.forEach((id, i) => pos.set(id, i)));
  place();
  const bary = (ids) => (ids.length ? ids.reduce((s, x) => s + (pos.get(x) ?? 0), 0) / ids.length : null);
  for (let sweep = 0; sweep < 4; sweep++) {
    const down = sweep % 2 === 0;
    const range = down ? cols.map((_, i) => i).slice(1) : cols.map((_, i) => i).reverse().slice(1);
    for (const i of range) {
      const key = new Map(cols[i].map((id) => {
        const near = down ? byId.get(id).depends_on.filter((x) => byId.has(x)) : dependents.get(id);
        return [id, bary(near) ?? pos.get(id)];
      }));
      cols[i].sort((a, b) => key.get(a) - key.get(b));
      cols[i].forEach((id, j) => pos.set(id, j));
    }
  }
  return cols;
}

const shape = (tasks) => tasks.map((t) => `${t.id}<${t.depends_on.join(',')}`).join(';');

export function dag(container, onSelect) {
  let drawn = null, nodes = new Map(), selected = null;

  function draw(tasks) {
    const byId = new Map(tasks.map((t) => [t.id, t]));
    const depth = depths(tasks, byId);
    const cols = order(tasks, byId, depth);
    const crit = criticalPath(tasks, byId, depth);
    const at = new Map();
    cols.forEach((c, i) => c.forEach((id, j) => at.set(id, { x: PAD + i * (W + GX), y: PAD + j * (H + GY) })));
    const width = PAD * 2 + Math.max(1, cols.length) * (W + GX) - GX;
    const height = PAD * 2 + Math.max(1, ...cols.map((c) => c.length)) * (H + GY);
    const root = svg('svg', { class: 'dag', width, height, viewBox: `0 0 ${width} ${height}`, role: 'img' });
    root.append(svg('defs', {}, svg('marker', { id: 'arrow', viewBox: '0 0 8 8', refX: 8, refY: 4, markerWidth: 8, markerHeight: 8, markerUnits: 'userSpaceOnUse', orient: 'auto' },
      svg('path', { d: 'M0,0 L8,4 L0,8 z', class: 'arrowhead' }))));
    const edges = svg('g', { class: 'edges' });
    for (const t of tasks) {
      for (const d of t.depends_on) {
        if (!at.has(d)) continue;
        const a = at.get(d), b = at.get(t.id);
        const x1 = a.x + W, y1 = a.y + H / 2, x2 = b.x, y2 = b.y + H / 2, mx = (x1 + x2) / 2;
        // An edge over more than one column runs in the gap under its source's row, never
        // behind the tasks between.
        const gy = a.y + H + GY / 2, xa = x1 + GX / 2, xb = x2 - GX / 2;
        const path = depth.get(t.id) - depth.get(d) > 1
          ? `M${x1},${y1} C${xa},${y1} ${x1},${gy} ${xa},${gy} L${xb},${gy} C${x2},${gy} ${xb},${y2} ${x2},${y2}`
          : `M${x1},${y1} C${mx},${y1} ${mx},${y2} ${x2},${y2}`;
        edges.append(svg('path', {
          d: path,
          class: crit.edges.has(`${d}>${t.id}`) ? 'edge critical' : 'edge',
          'marker-end': 'url(#arrow)', 'data-edge': `${d}>${t.id}`,
        }));
      }
    }
    root.append(edges);
    nodes = new Map();
    const g = svg('g', { class: 'nodes' });
    for (const t of tasks) {
      const { x, y } = at.get(t.id);
      const label = t.title.length > 22 ? `${t.title.slice(0, 21)}…` : t.title;
      const node = svg('g', {
        class: `node st-${t.status}${crit.nodes.has(t.id) ? ' critical' : ''}`,
        transform: `translate(${x},${y})`, 'data-task': t.id, 'data-status': t.status, tabindex: 0,
      },
      svg('title', {}, `${t.id}: ${t.title}`),
      svg('rect', { width: W, height: H, rx: 6 }),
      svg('text', { x: 8, y: 14, class: 'tid' }, t.id.length > 24 ? `${t.id.slice(0, 23)}…` : t.id),
      svg('text', { x: 8, y: 27, class: 'ttitle' }, label));
      node.addEventListener('click', () => onSelect(t.id));
      node.addEventListener('keydown', (e) => { if (e.key === 'Enter') onSelect(t.id); });
      nodes.set(t.id, node);
      g.append(node);
    }
    root.append(g);
    container.replaceChildren(root);
  }

  return {
    update(tasks) {
      const s = shape(tasks);
      if (s !== drawn) { draw(tasks); drawn = s; }
      for (const t of tasks) {
        const n = nodes.get(t.id);
        if (!n || n.dataset.status === t.status) continue;
        n.classList.remove(`st-${n.dataset.status}`);
        n.classList.add(`st-${t.status}`);
        n.dataset.status = t.status;
      }
      this.select(selected);
    },
    select(id) {
      for (const [k, n] of nodes) n.classList.toggle('selected', k === id);
      selected = id;
    },
  };
}
