// Small helpers shared by the pages: building elements (text is always set as text, never as
// HTML), numbers, times, and a worker's stream rendered as `orchestrate tail` renders it.

export function el(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k === 'class') e.className = v;
    // Through the CSSOM: the page's policy allows no inline style attribute.
    else if (k === 'style') Object.assign(e.style, v);
    else if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
    else e.setAttribute(k, v === true ? '' : v);
  }
  for (const c of children.flat()) {
    if (c === undefined || c === null || c === false) continue;
    e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return e;
}

// Replaces an element's children, skipping the null, undefined and false of optional parts
// (the DOM's own replaceChildren would show them as text).
export function fill(parent, ...children) {
  parent.replaceChildren(...children.flat().filter((c) => c !== null && c !== undefined && c !== false));
}

export const usd = (x) => `$${(x ?? 0).toFixed(x >= 100 ? 0 : x >= 1 ? 2 : 4)}`;

export function ago(iso) {
  if (!iso) return '';
  const s = Math.max(0, (Date.now() - Date.parse(iso)) / 1000);
  if (s < 60) return `${Math.floor(s)}s ago`;
  if (s < 3600) return `${Math.floor(s / 60)}m ago`;
  if (s < 86400) return `${Math.floor(s / 3600)}h ago`;
  return `${Math.floor(s / 86400)}d ago`;
}

export function clock(iso) {
  if (!iso) return '';
  const d = new Date(iso);
  return d.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit', second: '2-digit' });
}

export const base = (path) => path.split('/').filter(Boolean).pop() ?? path;

export function pill(status) {
  return el('span', { class: `pill st-${status}` }, status.replace('_', ' '));
}

function short(s, n) {
  const line = (s ?? '').trim().split('\n')[0].trim();
  return line.length > n ? `${line.slice(0, n - 1)}…` : line;
}

function summary(input) {
  for (const k of ['command', 'file_path', 'path', 'pattern', 'url', 'query', 'note', 'summary']) {
    if (typeof input?.[k] === 'string') return ` ${short(input[k], 100)}`;
  }
  return '';
}

function toolResults(content) {
  return (content ?? []).filter((b) => b.type === 'tool_result').map((b) => {
    const text = typeof b.content === 'string' ? b.content
      : (b.content ?? []).map((c) => c.text ?? '').join(' ');
    return `  ${b.is_error ? '✗' : '←'} ${short(text, 160)}`;
  }).join('\n') || null;
}

function codex(v) {
  const item = v.item ?? {};
  const key = `${v.type}/${item.type ?? ''}`;
  switch (key) {
    case 'thread.started/': return `started (thread ${v.thread_id})`;
    case 'item.completed/agent_message': return (item.text ?? '').trim();
    case 'item.started/command_execution': return `→ Bash${summary(item)}`;
    case 'item.started/mcp_tool_call': return `→ mcp__${item.server}__${item.tool}`;
    case 'item.completed/command_execution':
      return `  ← exit ${item.exit_code ?? '?'}: ${short(item.aggregated_output, 160)}`;
    case 'item.completed/mcp_tool_call': return `  ← ${item.status ?? 'done'}`;
    case 'turn.completed/':
      return `■ done · ${v.usage?.input_tokens ?? 0} in, ${v.usage?.output_tokens ?? 0} out`;
    case 'turn.failed/': return `■ failed: ${short(v.error?.message, 200)}`;
    case 'error/': return `! ${short(v.message, 200)}`;
    default: return null;
  }
}

// One stream line for people, or null for what says nothing to them.
export function renderLine(line) {
  let v;
  try { v = JSON.parse(line); } catch { return null; }
  if (typeof v.orchestrator === 'string') return `… ${v.orchestrator}`;
  switch (v.type) {
    case 'system': return v.subtype === 'init' ? `started${v.model ? ` on ${v.model}` : ''}` : null;
    case 'assistant':
      return (v.message?.content ?? []).map((b) => (b.type === 'text' ? b.text.trim()
        : b.type === 'tool_use' ? `→ ${b.name}${summary(b.input)}` : '')).filter(Boolean).join('\n') || null;
    case 'user': return toolResults(v.message?.content);
    case 'result':
      return `■ ${v.is_error ? 'failed' : 'done'}: ${short(v.result, 160)} · ${usd(v.total_cost_usd)}`
        + ` · ${v.num_turns ?? 0} turns · ${v.usage?.input_tokens ?? 0} in, ${v.usage?.output_tokens ?? 0} out`;
    case 'rate_limit_event': {
      const i = v.rate_limit_info ?? {};
      const at = typeof i.utilization === 'number' ? ` at ${Math.round(i.utilization * 100)}%` : '';
      return `usage: ${i.rateLimitType ?? 'window'} ${i.status ?? '?'}${at}`;
    }
    default: return codex(v);
  }
}
