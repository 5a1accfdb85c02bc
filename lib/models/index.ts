/** The built-in model: tokenizer, policy interface, native transformer, safetensors I/O. */
export * from './tokenizer';
export * from './policy';
export * from './transformer';
export * from './media';
export * from './safetensors';
export * from './hf';
