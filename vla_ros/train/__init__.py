"""Fine-tuning strategies and Shallow-pi distillation."""
