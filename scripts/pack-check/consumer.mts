// TypeScript ESM consumer (module nodenext): the "import" condition's types resolve too.
import { sampleSync, groupAdvantagesSync } from 'grpo-kernels';
import type { SampleResult } from 'grpo-kernels';

const s: SampleResult = sampleSync({ logits: new Float32Array([0, 5, 1]), vocabSize: 3, temperature: 0, seed: 1n });
const adv = groupAdvantagesSync({ rewards: new Float32Array([1, 0]), groupSize: 2 });
if (s.tokens[0] !== 1 || !(adv.advantages[0] > 0)) throw new Error(`token ${s.tokens[0]}, advantage ${adv.advantages[0]}`);
console.log(`ok TypeScript (tsc --strict, ESM): greedy token ${s.tokens[0]}, advantages ${Array.from(adv.advantages).map((x) => x.toFixed(4))}`);
