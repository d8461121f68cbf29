// Syntax highlighting for code blocks: one tokenizer for C-like, Python-like and shell-like
// languages (comments, strings, numbers, keywords). Output is escaped HTML with <span class="tok-*">.

const KEYWORDS = new Set((
  "def class return if elif else for while in not and or is None True False import from as with try except " +
  "finally raise yield lambda pass break continue global nonlocal async await function const let var new this " +
  "typeof instanceof null undefined true false switch case default do void delete export extends super static " +
  "public private protected interface type enum struct impl fn pub mut use mod match where trait self Self " +
  "package func go defer chan map range int float double char bool long short unsigned signed sizeof include " +
  "echo then fi esac done elif local readonly select until").split(" "));

const HASH_COMMENT = new Set(["python", "py", "bash", "sh", "shell", "zsh", "ruby", "rb", "yaml", "yml", "toml", "r", "perl", "dockerfile", "makefile"]);

function esc(s) { return s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;"); }

export function highlight(code, lang = "") {
  const l = (lang || "").toLowerCase();
  const hash = HASH_COMMENT.has(l);
  const slash = !hash || l === "";
  const pattern = new RegExp([
    slash ? String.raw`\/\/[^\n]*|\/\*[\s\S]*?\*\/` : null,
    hash || l === "" ? String.raw`#[^\n]*` : null,
    String.raw`"""[\s\S]*?"""|'''[\s\S]*?'''`,
    String.raw`"(?:\\.|[^"\\\n])*"|'(?:\\.|[^'\\\n])*'|\x60(?:\\.|[^\x60\\])*\x60`,
    String.raw`\b\d+(?:\.\d+)?(?:e[+-]?\d+)?\b|\b0x[0-9a-f]+\b`,
    String.raw`[A-Za-z_][A-Za-z0-9_]*`,
  ].filter(Boolean).join("|"), "gi");
  let out = "";
  let last = 0;
  for (const m of code.matchAll(pattern)) {
    const tok = m[0];
    out += esc(code.slice(last, m.index));
    last = m.index + tok.length;
    let cls = null;
    if (tok.startsWith("//") || tok.startsWith("/*") || (tok.startsWith("#") && (hash || l === ""))) cls = "comment";
    else if (/^["'\x60]/.test(tok)) cls = "string";
    else if (/^\d|^0x/i.test(tok)) cls = "number";
    else if (KEYWORDS.has(tok)) cls = "keyword";
    else if (code[last] === "(") cls = "call";
    out += cls ? `<span class="tok-${cls}">${esc(tok)}</span>` : esc(tok);
  }
  return out + esc(code.slice(last));
}
