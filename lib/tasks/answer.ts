/**
 * Answer extraction and comparison shared by the built-in tasks and user datasets.
 * Order of preference: the content of the last <answer>...</answer>, the last \boxed{...},
 * text after the last "####" (GSM8K style), then the last number in the text.
 */

const NUMBER = /-?\d+(?:\.\d+)?(?:\/\d+)?/g;

export function extractAnswer(text: string): string | null {
  const tag = [...text.matchAll(/<answer>([\s\S]*?)<\/answer>/g)];
  if (tag.length) return tag[tag.length - 1][1].trim();
  const boxed = text.lastIndexOf('\\boxed{');
  if (boxed >= 0) {
    let depth = 0;
    for (let i = boxed + 7; i < text.length; i++) {
      if (text[i] === '{') depth++;
      else if (text[i] === '}') {
        if (depth === 0) return text.slice(boxed + 7, i).trim();
        depth--;
      }
    }
  }
  const hashes = text.lastIndexOf('####');
  if (hashes >= 0) return text.slice(hashes + 4).trim();
  const nums = text.match(NUMBER);
  return nums ? nums[nums.length - 1] : null;
}

function asNumber(s: string): number | null {
  const t = s.replace(/[,\s$]/g, '');
  const frac = /^(-?\d+)\/(\d+)$/.exec(t);
  if (frac) return +frac[2] === 0 ? null : +frac[1] / +frac[2];
  if (!/^-?\d+(?:\.\d+)?$/.test(t)) return null;
  return Number(t);
}

/** Normalised equality: numerically (|a−b| ≤ 1e-9·max(1,|b|)) when both parse as numbers, else case- and space-insensitive text. */
export function answersMatch(got: string | null, want: string): boolean {
  if (got === null) return false;
  const a = asNumber(got);
  const b = asNumber(want);
  if (a !== null && b !== null) return Math.abs(a - b) <= 1e-9 * Math.max(1, Math.abs(b));
  const norm = (s: string) => s.trim().toLowerCase().replace(/\s+/g, ' ').replace(/[.]$/, '');
  return norm(got) === norm(want);
}
