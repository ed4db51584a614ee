"""`python -m aigc_apps.cli` (also `accelerate launch -m aigc_apps.cli finetune ...`)."""

from aigc_apps.cli import main

if __name__ == "__main__":
    main()
