/**
 * Every option of the trainer, the SFT warm start, evaluation and the CLI, in one table: name
 * (TRL's GRPOConfig name in camelCase where TRL has one), type, default, help. The CLI's flags,
 * its --help and the JSON config file all come from this table.
 */

export type OptionType = 'number' | 'int' | 'boolean' | 'string' | 'numbers' | 'strings';

export interface OptionSpec {
  name: string;
  type: OptionType;
  default: unknown;
  help: string;
  choices?: readonly string[];
  section: string;
}

const S_RUN = 'Run';
const S_TASK = 'Task';
const S_MODEL = 'Model (built-in transformer)';
const S_GRPO = 'GRPO';
const S_SAMPLE = 'Sampling';
const S_REWARD = 'Rewards';
const S_OPT = 'Optimisation';
const S_SFT = 'Supervised warm start (grpo sft)';
const S_EVAL = 'Evaluation';
const S_SERVE = 'Rollout engines and serving';

export const OPTIONS: readonly OptionSpec[] = [
  // run
  { section: S_RUN, name: 'config', type: 'string', default: undefined, help: 'YAML (.yaml/.yml) or JSON file of options, keys in camelCase or snake_case (flags given on the command line win)' },
  { section: S_RUN, name: 'outputDir', type: 'string', default: 'runs/default', help: 'where metrics.jsonl, checkpoints/, eval JSON and report.html go' },
  { section: S_RUN, name: 'seed', type: 'int', default: 42, help: 'seed of everything: task generation, data order, model init, sampling' },
  { section: S_RUN, name: 'init', type: 'string', default: undefined, help: 'start from this checkpoint directory (e.g. the SFT output) instead of a fresh model' },
  { section: S_RUN, name: 'resume', type: 'boolean', default: false, help: 'continue the run in outputDir from its latest checkpoint (bit-exact); an error when there is none' },
  { section: S_RUN, name: 'resumeFromCheckpoint', type: 'string', default: undefined, help: "continue from this checkpoint (a checkpoint directory, or a run directory: its latest) into outputDir (TRL's resume_from_checkpoint; a bare flag = --resume)" },
  { section: S_RUN, name: 'overwriteOutputDir', type: 'boolean', default: false, help: 'start a new run in an outputDir that holds an earlier run or other files: removes only the files a run writes (metrics, checkpoints, eval and report files), never others' },
  { section: S_RUN, name: 'model', type: 'string', default: undefined, help: 'a Hugging Face checkpoint folder (Llama / Qwen2 / Qwen3: config.json, safetensors, tokenizer.json) to train instead of the built-in transformer (grpo eval: to evaluate, with the weights of a checkpoint when there is one)' },
  { section: S_RUN, name: 'usePeft', type: 'boolean', default: false, help: 'with --model: train LoRA adapters (PEFT layout, dropout 0) instead of every weight; the reference model is the base (adapters off)' },
  { section: S_RUN, name: 'loraR', type: 'int', default: 16, help: 'LoRA rank r' },
  { section: S_RUN, name: 'loraAlpha', type: 'number', default: 32, help: 'LoRA alpha (adapters scaled by alpha / r)' },
  { section: S_RUN, name: 'loraTargetModules', type: 'strings', default: ['q_proj', 'v_proj'], help: 'LoRA target modules from q_proj,k_proj,v_proj,o_proj,gate_proj,up_proj,down_proj' },
  { section: S_RUN, name: 'hiddenPath', type: 'boolean', default: true, help: 'train models that have a hidden-state path (the HF models) with the fused loss from hidden states (grpoLossFromHidden: no N×V logits); --no-hidden-path: logits' },
  { section: S_RUN, name: 'saveMerged', type: 'boolean', default: false, help: 'with --use-peft: also save the base with the adapters merged (outputDir/hf-model)' },
  { section: S_RUN, name: 'threads', type: 'int', default: 0, help: 'CPU threads for the kernels and the model (0 = the package default)' },
  { section: S_RUN, name: 'progress', type: 'boolean', default: true, help: 'show the progress bar (a line per step when stderr is not a terminal)' },
  // data parallel (lib/parallel/, README "Data-parallel training")
  { section: S_RUN, name: 'nprocPerNode', type: 'int', default: 1, help: 'grpo train: start N local ranks (child processes) of a data-parallel run, as torchrun --nproc-per-node (needs Gloo: apt-get install libgloo-dev)' },
  { section: S_RUN, name: 'distTimeout', type: 'number', default: 300, help: 'data parallel: seconds a collective may wait for the other ranks (covers rank 0\'s evaluations and checkpoints); a dead or hung rank fails the others within it' },
  { section: S_RUN, name: 'distCheckWeights', type: 'boolean', default: false, help: 'data parallel: after every step check (by hash) that every rank holds the same weights' },
  // task
  { section: S_TASK, name: 'task', type: 'string', default: 'arithmetic', help: "'arithmetic', 'countdown', 'clevr_count', 'clevr_count_all', 'video_direction', 'video_direction_shuffled', 'video_direction_2f', 'video_direction_2f_shuffled', 'beep_count', or a JSONL dataset path (ms-swift layout: messages|prompt|query + solution)" },
  { section: S_TASK, name: 'testFile', type: 'string', default: undefined, help: 'held-out JSONL for a dataset task (default: 10% of the training file)' },
  { section: S_TASK, name: 'digits', type: 'int', default: 2, help: 'arithmetic: digits per operand (difficulty)' },
  { section: S_TASK, name: 'ops', type: 'strings', default: ['+', '-'], help: 'arithmetic: operators from + - * (space- or comma-separated)' },
  { section: S_TASK, name: 'allowNegative', type: 'boolean', default: false, help: 'arithmetic: allow negative results' },
  { section: S_TASK, name: 'countdownNumbers', type: 'int', default: 3, help: 'countdown: numbers per puzzle' },
  { section: S_TASK, name: 'maxNumber', type: 'int', default: 10, help: 'countdown: numbers are drawn from 1..maxNumber' },
  { section: S_TASK, name: 'maxTarget', type: 'int', default: 100, help: 'countdown: largest target' },
  { section: S_TASK, name: 'trainSize', type: 'int', default: 5000, help: 'built-in tasks: training prompts' },
  { section: S_TASK, name: 'testSize', type: 'int', default: 200, help: 'built-in tasks: held-out prompts (disjoint from train)' },
  { section: S_TASK, name: 'answerMatch', type: 'string', default: 'normalized', choices: ['normalized', 'case_sensitive', 'exact'], help: 'dataset tasks: how answers compare (normalized: numbers by value, e.g. 0.5 = 1/2, text trimmed and case-folded)' },
  { section: S_TASK, name: 'formatPattern', type: 'string', default: undefined, help: "regex (source) a well-formed completion matches (default: the task's)" },
  // model
  { section: S_MODEL, name: 'dModel', type: 'int', default: 64, help: 'hidden size' },
  { section: S_MODEL, name: 'nLayers', type: 'int', default: 2, help: 'transformer blocks' },
  { section: S_MODEL, name: 'nHeads', type: 'int', default: 4, help: 'attention heads' },
  { section: S_MODEL, name: 'dFF', type: 'int', default: 256, help: 'feed-forward size' },
  { section: S_MODEL, name: 'maxSeqLen', type: 'int', default: 32, help: 'longest prompt + completion in tokens' },
  { section: S_MODEL, name: 'patchSize', type: 'int', default: 4, help: 'multimodal tasks: vision encoder patch size (tokens per image = (size/patch)²)' },
  { section: S_MODEL, name: 'temporalPatch', type: 'int', default: undefined, help: 'multimodal video tasks: frames per video token (Qwen2-VL temporal_patch_size; each token\'s input holds that many frames of its patch). Default 2 for video, 1 without' },
  { section: S_MODEL, name: 'encoderHidden', type: 'int', default: 32, help: 'multimodal tasks: hidden size of the built-in vision / audio encoders' },
  { section: S_MODEL, name: 'freezeVit', type: 'boolean', default: false, help: 'multimodal: no updates to the encoders (patch embedding, position tables) (ms-swift freeze_vit)' },
  { section: S_MODEL, name: 'freezeAligner', type: 'boolean', default: false, help: 'multimodal: no updates to the projectors (ms-swift freeze_aligner)' },
  // grpo
  { section: S_GRPO, name: 'maxSteps', type: 'int', default: 300, help: 'GRPO steps (each: generate, score, μ updates)' },
  { section: S_GRPO, name: 'batchSize', type: 'int', default: 32, help: 'B: prompts per step (S = B·G sequences)' },
  { section: S_GRPO, name: 'numGenerations', type: 'int', default: 8, help: 'G: completions per prompt (the group)' },
  { section: S_GRPO, name: 'numIterations', type: 'int', default: 1, help: 'μ: optimisation iterations per generated batch (old log-probs kept from generation)' },
  { section: S_GRPO, name: 'beta', type: 'number', default: 0.0, help: 'KL weight β; 0 = no reference model at all' },
  { section: S_GRPO, name: 'klEstimator', type: 'string', default: 'k3', choices: ['k1', 'k2', 'k3', 'low_var_kl', 'abs', 'k1+', 'k3+', 'low_var_kl+', 'abs+', 'full'], help: "KL estimator (README, Math §3; verl's k3 is low_var_kl, '+' = straight-through k2 gradient, full = exact KL from both models' logits: trains through the logits path)" },
  { section: S_GRPO, name: 'useBiasCorrectionKl', type: 'boolean', default: false, help: 'TRL use_bias_correction_kl: KL term D·ρ (importance-weighted)' },
  { section: S_GRPO, name: 'epsilon', type: 'number', default: 0.2, help: 'ε_low: ratio clipped below at 1 − ε' },
  { section: S_GRPO, name: 'epsilonHigh', type: 'number', default: undefined, help: 'ε_high (clip-higher, DAPO); default ε' },
  { section: S_GRPO, name: 'delta', type: 'number', default: undefined, help: 'two-sided clipping bound δ > 1 + ε_high (off by default)' },
  { section: S_GRPO, name: 'policyLoss', type: 'string', default: 'clip', choices: ['clip', 'dual_clip', 'cispo', 'sapo', 'geo_mean', 'vespo', 'clip_cov', 'kl_cov'], help: 'policy term (TRL / verl names)' },
  { section: S_GRPO, name: 'clipCovRatio', type: 'number', default: 2e-4, help: 'clip_cov: fraction of tokens whose policy term is dropped (verl clip_cov_ratio)' },
  { section: S_GRPO, name: 'clipCovLb', type: 'number', default: 1.0, help: 'clip_cov: covariance lower bound of the candidates (verl clip_cov_lb)' },
  { section: S_GRPO, name: 'clipCovUb', type: 'number', default: 5.0, help: 'clip_cov: covariance upper bound of the candidates (verl clip_cov_ub)' },
  { section: S_GRPO, name: 'klCovRatio', type: 'number', default: 2e-4, help: 'kl_cov: fraction of tokens given the |log-ratio| penalty (verl kl_cov_ratio)' },
  { section: S_GRPO, name: 'ppoKlCoef', type: 'number', default: 0.1, help: 'kl_cov: weight of the |log-ratio| penalty (verl ppo_kl_coef)' },
  { section: S_GRPO, name: 'vespoKPos', type: 'number', default: 2.0, help: 'vespo: gamma power k for A ≥ 0 (TRL vespo_k_pos)' },
  { section: S_GRPO, name: 'vespoLambdaPos', type: 'number', default: 3.0, help: 'vespo: gamma decay λ for A ≥ 0 (TRL vespo_lambda_pos)' },
  { section: S_GRPO, name: 'vespoKNeg', type: 'number', default: 3.0, help: 'vespo: gamma power k for A < 0 (TRL vespo_k_neg)' },
  { section: S_GRPO, name: 'vespoLambdaNeg', type: 'number', default: 2.0, help: 'vespo: gamma decay λ for A < 0 (TRL vespo_lambda_neg)' },
  { section: S_GRPO, name: 'entropyCoef', type: 'number', default: 0, help: 'entropy bonus: loss −= coef·H, aggregated like the loss (verl entropy_coeff, TRL entropy_coef)' },
  { section: S_GRPO, name: 'clampSequenceLogRatio', type: 'boolean', default: false, help: "GSPO: clamp the sequence log-ratio at 10 as verl does (TRL: unclamped)" },
  { section: S_GRPO, name: 'cispoClip', type: 'string', default: 'cap', choices: ['cap', 'range'], help: "cispo weight: 'cap' min(ρ, ε_high) (TRL) or 'range' clip(ρ, 1 − ε, 1 + ε_high) (verl)" },
  { section: S_GRPO, name: 'sapoTemperaturePos', type: 'number', default: 1.0, help: 'SAPO gate temperature for A > 0 (TRL sapo_temperature_pos)' },
  { section: S_GRPO, name: 'sapoTemperatureNeg', type: 'number', default: 1.05, help: 'SAPO gate temperature for A ≤ 0 (TRL sapo_temperature_neg)' },
  { section: S_GRPO, name: 'lossType', type: 'string', default: 'dapo', choices: ['grpo', 'bnpo', 'dapo', 'dr_grpo', 'seq_sum', 'luspo'], help: 'aggregation (README, Math §6)' },
  { section: S_GRPO, name: 'lossAggMode', type: 'string', default: undefined, choices: ['token-mean', 'seq-mean-token-sum', 'seq-mean-token-mean', 'seq-mean-token-sum-norm'], help: "verl loss_agg_mode instead of lossType (normalised over the whole step's batch)" },
  { section: S_GRPO, name: 'lossScaleFactor', type: 'number', default: undefined, help: 'seq-mean-token-sum-norm divisor (verl loss_scale_factor; default the padded length T)' },
  { section: S_GRPO, name: 'scaleRewards', type: 'string', default: 'group', choices: ['group', 'batch', 'none'], help: "advantage scaling: σ of the group, of the batch, or none (Dr. GRPO); for grpo, rloo, grpo_passk" },
  { section: S_GRPO, name: 'advantageEstimator', type: 'string', default: 'grpo', choices: ['grpo', 'rloo', 'reinforce_plus_plus', 'reinforce_plus_plus_baseline', 'gpg', 'grpo_passk', 'opo', 'remax'], help: "advantage estimator, verl's adv_estimator names (README, Math §2); scaleRewards applies to grpo, rloo, grpo_passk; remax samples one greedy completion per prompt as the baseline" },
  { section: S_GRPO, name: 'normalizeAdvantages', type: 'boolean', default: false, help: 'TRL normalize_advantages: whiten the advantages over the batch, (A − mean) / (std + 1e-4)' },
  { section: S_GRPO, name: 'importanceSamplingLevel', type: 'string', default: 'token', choices: ['token', 'sequence'], help: "'sequence' = GSPO" },
  { section: S_GRPO, name: 'topEntropyQuantile', type: 'number', default: 1, help: 'keep the policy term only on the top-q tokens by entropy (1 = all)' },
  { section: S_GRPO, name: 'maskTruncatedCompletions', type: 'boolean', default: false, help: 'exclude completions that hit maxCompletionLength from the loss' },
  { section: S_GRPO, name: 'dynamicSampling', type: 'boolean', default: false, help: 'DAPO: drop groups whose rewards all agree and draw more prompts' },
  { section: S_GRPO, name: 'maxDynamicSamplingRounds', type: 'int', default: 3, help: 'cap on generation rounds per step with dynamicSampling' },
  // sampling
  { section: S_SAMPLE, name: 'temperature', type: 'number', default: 1.0, help: 'τ for rollouts (and the loss)' },
  { section: S_SAMPLE, name: 'topK', type: 'int', default: 0, help: 'top-k (0 = off)' },
  { section: S_SAMPLE, name: 'topP', type: 'number', default: 1.0, help: 'top-p (1 = off)' },
  { section: S_SAMPLE, name: 'minP', type: 'number', default: 0.0, help: 'min-p (0 = off)' },
  { section: S_SAMPLE, name: 'maxCompletionLength', type: 'int', default: 8, help: 'completion tokens at most' },
  { section: S_SAMPLE, name: 'stop', type: 'strings', default: [], help: 'extra stop strings, space- or comma-separated (EOS always stops)' },
  { section: S_SAMPLE, name: 'asyncRollouts', type: 'boolean', default: false, help: "one-step-off: sample the next step's rollouts (from a weight snapshot) while this step trains" },
  { section: S_SAMPLE, name: 'rolloutImportanceSamplingMode', type: 'string', default: undefined, choices: ['token_truncate', 'token_mask', 'sequence_truncate', 'sequence_mask'], help: "rollout IS correction between the training policy and the sampler's log-probs (ms-swift's modes; TIS = truncate, MIS = mask); default off" },
  { section: S_SAMPLE, name: 'rolloutImportanceSamplingThreshold', type: 'number', default: 2, help: 'the rollout IS threshold C: weights truncated at C, or tokens/sequences with ratio > C masked' },
  { section: S_SAMPLE, name: 'maxStaleness', type: 'int', default: 1, help: 'async: drop (and resample) rollouts more than this many optimiser updates older than the policy being trained' },
  // rewards
  { section: S_REWARD, name: 'rewards', type: 'strings', default: ['accuracy', 'format'], help: 'reward functions: accuracy, format, cosine, repetition, soft_overlong' },
  { section: S_REWARD, name: 'rewardWeights', type: 'numbers', default: undefined, help: 'one weight per reward function (built-ins, then the module\'s); default all 1' },
  { section: S_REWARD, name: 'rewardModule', type: 'string', default: undefined, help: 'JS/TS module exporting extra reward functions (completions, ctx) => number[]' },
  { section: S_REWARD, name: 'rewardTimeout', type: 'number', default: 120, help: 'seconds a reward function may take per batch; a module that overruns it is stopped and the run fails naming it (rewardModule functions run in a worker thread)' },
  { section: S_REWARD, name: 'rewardErrors', type: 'string', default: 'abort', choices: ['abort', 'no_reward'], help: "a reward function that throws or returns no array of one value per completion: stop the run, or give that batch no reward and warn" },
  { section: S_REWARD, name: 'cosineMinLenValueCorrect', type: 'number', default: 1.0, help: 'cosine: reward of a correct completion of length 0' },
  { section: S_REWARD, name: 'cosineMaxLenValueCorrect', type: 'number', default: 0.5, help: 'cosine: reward of a correct completion at cosineMaxLen' },
  { section: S_REWARD, name: 'cosineMinLenValueWrong', type: 'number', default: -0.5, help: 'cosine: reward of a wrong completion of length 0' },
  { section: S_REWARD, name: 'cosineMaxLenValueWrong', type: 'number', default: 0.0, help: 'cosine: reward of a wrong completion at cosineMaxLen' },
  { section: S_REWARD, name: 'cosineMaxLen', type: 'int', default: undefined, help: 'cosine: length scale (default maxCompletionLength)' },
  { section: S_REWARD, name: 'repetitionNgramSize', type: 'int', default: 3, help: 'repetition: n-gram size' },
  { section: S_REWARD, name: 'repetitionMaxPenalty', type: 'number', default: -1.0, help: 'repetition: penalty when every n-gram repeats (≤ 0)' },
  { section: S_REWARD, name: 'repetitionUnit', type: 'string', default: 'word', choices: ['word', 'char'], help: 'repetition: n-grams of words or characters' },
  { section: S_REWARD, name: 'softOverlongCache', type: 'int', default: undefined, help: 'soft_overlong: L_cache tokens (default maxCompletionLength/4)' },
  // optimisation
  { section: S_OPT, name: 'learningRate', type: 'number', default: 1e-3, help: 'peak AdamW learning rate (linear warm-up, then cosine decay)' },
  { section: S_OPT, name: 'warmupRatio', type: 'number', default: 0.05, help: 'fraction of updates spent warming up' },
  { section: S_OPT, name: 'minLrRatio', type: 'number', default: 0.1, help: 'the cosine decays to learningRate × this' },
  { section: S_OPT, name: 'weightDecay', type: 'number', default: 0.0, help: 'AdamW decoupled weight decay' },
  { section: S_OPT, name: 'adamBeta1', type: 'number', default: 0.9, help: 'AdamW β1' },
  { section: S_OPT, name: 'adamBeta2', type: 'number', default: 0.99, help: 'AdamW β2' },
  { section: S_OPT, name: 'maxGradNorm', type: 'number', default: 1.0, help: 'global gradient-norm clip (0 = off)' },
  { section: S_OPT, name: 'gradientAccumulationSteps', type: 'int', default: 1, help: 'micro-batches per optimiser update' },
  // logging and eval during training
  { section: S_EVAL, name: 'evalSteps', type: 'int', default: 25, help: 'evaluate on the held-out split every N steps (0 = only at the end)' },
  { section: S_EVAL, name: 'evalLimit', type: 'int', default: 200, help: 'held-out prompts per evaluation' },
  { section: S_EVAL, name: 'evalK', type: 'int', default: 8, help: 'samples per prompt (pass@k, maj@k)' },
  { section: S_EVAL, name: 'evalTemperature', type: 'number', default: undefined, help: 'sampling temperature for evaluation (default: temperature)' },
  { section: S_EVAL, name: 'saveSteps', type: 'int', default: 100, help: 'checkpoint every N steps (0 = only at the end)' },
  { section: S_EVAL, name: 'saveTotalLimit', type: 'int', default: 2, help: 'checkpoints kept (older ones are deleted)' },
  { section: S_EVAL, name: 'checkpoint', type: 'string', default: undefined, help: 'grpo eval: checkpoint directory (default: latest in outputDir)' },
  // rollout engines and grpo serve
  { section: S_SERVE, name: 'rolloutEngine', type: 'string', default: 'in-process', choices: ['in-process', 'workers', 'remote'], help: "where GRPO samples: in this process, in --rollout-workers local worker processes, or on 'remote' OpenAI-compatible servers (--rollout-urls: grpo serve, vLLM, SGLang); the same tokens for the same seed" },
  { section: S_SERVE, name: 'rolloutWorkers', type: 'int', default: 2, help: 'workers engine: number of worker processes (each holds a copy of the weights; rows split across them)' },
  { section: S_SERVE, name: 'rolloutUrls', type: 'strings', default: [], help: 'remote engine: base URLs of the completion servers (comma- or space-separated); requests are split across them' },
  { section: S_SERVE, name: 'rolloutTimeout', type: 'number', default: 600, help: 'seconds one request to a worker (workers engine: the worker is then killed and replaced) or to a server (remote engine) may take before it is retried on another' },
  { section: S_SERVE, name: 'rolloutRetries', type: 'int', default: 2, help: 'workers and remote engines: retries of a failed request (each on the next live worker or server) before the step fails naming them' },
  { section: S_SERVE, name: 'endpoint', type: 'string', default: undefined, help: 'grpo eval: evaluate the model behind this OpenAI-compatible base URL instead of a checkpoint' },
  { section: S_SERVE, name: 'port', type: 'int', default: 8000, help: 'grpo serve: TCP port (0 = any free port, printed at start)' },
  { section: S_SERVE, name: 'host', type: 'string', default: '127.0.0.1', help: 'grpo serve: address to listen on (0.0.0.0 = every interface)' },
  { section: S_SERVE, name: 'servedModelName', type: 'string', default: 'grpo', help: 'grpo serve: the model name /v1/models lists' },
  // sft
  { section: S_SFT, name: 'sftSteps', type: 'int', default: 2000, help: 'supervised steps (at most, with sftStopAccuracy)' },
  { section: S_SFT, name: 'sftStopAccuracy', type: 'number', default: 0, help: 'stop the warm start once sampled accuracy on 64 training prompts (4 samples each, checked every 25 steps) reaches this (0 = run all sftSteps)' },
  { section: S_SFT, name: 'sftBatchSize', type: 'int', default: 32, help: 'examples per supervised step' },
  { section: S_SFT, name: 'sftLearningRate', type: 'number', default: 3e-3, help: 'supervised learning rate (constant after the warm-up)' },
  { section: S_SFT, name: 'sftExamples', type: 'int', default: 0, help: 'train only on the first N training examples (0 = all): a partial warm start' },
];

export type Options = Record<string, unknown>;

export function defaultOptions(): Options {
  const o: Options = {};
  for (const s of OPTIONS) if (s.default !== undefined) o[s.name] = Array.isArray(s.default) ? [...s.default] : s.default;
  return o;
}

const BY_NAME = new Map(OPTIONS.map((s) => [s.name, s]));
/** The command-line flag of an option: maxSeqLen -> max-seq-len, dFF -> d-ff. */
export function flagName(name: string): string {
  return name.replace(/([a-z0-9])([A-Z]+)/g, (_, a: string, b: string) => `${a}-${b.toLowerCase()}`);
}
const loose = (s: string) => s.replace(/[-_]/g, '').toLowerCase();
const BY_LOOSE = new Map(OPTIONS.map((s) => [loose(s.name), s]));

/** The option named `name` in camelCase, kebab-case or snake_case (case-insensitive), or undefined. */
export function optionSpec(name: string): OptionSpec | undefined {
  return BY_NAME.get(name) ?? BY_LOOSE.get(loose(name));
}

/** Converts and checks one value; errors name the option and what was expected. */
export function coerceOption(spec: OptionSpec, raw: unknown, where = 'option'): unknown {
  const bad = (exp: string) => new RangeError(`${where} ${spec.name}: expected ${exp} but received ${JSON.stringify(raw)}`);
  const num = (x: unknown, int: boolean) => {
    const v = typeof x === 'number' ? x : typeof x === 'string' && x.trim() !== '' ? Number(x) : NaN;
    if (!Number.isFinite(v)) throw bad(int ? 'an integer' : 'a number');
    if (int && !Number.isInteger(v)) throw bad('an integer');
    return v;
  };
  const list = (x: unknown) => (Array.isArray(x) ? x : typeof x === 'string' ? (x === '' ? [] : x.split(',')) : [x]);
  let v: unknown;
  switch (spec.type) {
    case 'number': v = num(raw, false); break;
    case 'int': v = num(raw, true); break;
    case 'boolean':
      if (typeof raw === 'boolean') v = raw;
      else if (raw === 'true' || raw === '1' || raw === '') v = true;
      else if (raw === 'false' || raw === '0') v = false;
      else throw bad('true or false');
      break;
    case 'string':
      if (typeof raw !== 'string') throw bad('a string');
      v = raw;
      break;
    case 'numbers': v = list(raw).map((x) => num(x, false)); break;
    case 'strings': v = list(raw).map((x) => String(x).trim()).filter(Boolean); break;
  }
  if (spec.choices && !spec.choices.includes(v as string)) throw bad(`one of ${spec.choices.join(', ')}`);
  return v;
}

/** Checks an options object (e.g. from a JSON config file): unknown keys are errors. */
export function validateOptions(o: Record<string, unknown>, where = 'config'): Options {
  const out: Options = {};
  for (const [k, v] of Object.entries(o)) {
    const spec = optionSpec(k);
    if (!spec) throw new RangeError(`${where}: unknown option '${k}' (see --help)`);
    out[spec.name] = v === null ? undefined : coerceOption(spec, v, where);
  }
  return out;
}

/** --help text: every option (or those `include` keeps) with its flag, default and meaning, by section. */
export function helpText(include: (s: OptionSpec) => boolean = () => true): string {
  const lines: string[] = [];
  let section = '';
  for (const s of OPTIONS) {
    if (!include(s)) continue;
    if (s.section !== section) {
      section = s.section;
      lines.push('', `${section}:`);
    }
    const flag = `--${flagName(s.name)}${s.type === 'boolean' ? '' : ' <' + (s.choices ? s.choices.join('|') : s.type) + '>'}`;
    const def = s.default === undefined ? '' : ` (default ${Array.isArray(s.default) ? (s.default as unknown[]).join(',') || '""' : String(s.default)})`;
    lines.push(`  ${flag.padEnd(44)} ${s.help}${def}`);
  }
  return lines.join('\n');
}
