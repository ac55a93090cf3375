"""Evidence bundles: exporting one, checking one offline, reproducing a model from one."""
