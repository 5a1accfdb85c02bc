// placeholder: implemented by the op's owner
export {};
