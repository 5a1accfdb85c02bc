/** Hugging Face checkpoints: config, safetensors (mmap, shards, bf16), tokenizer + chat template, Llama/Qwen models. */
export * from './config';
export * from './safetensors';
export * from './tokenizer';
export * from './model';
export * from './identity';
