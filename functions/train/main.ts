// Entry point of the Batch training container; built in its own issue.
throw new Error('train: not implemented yet');
