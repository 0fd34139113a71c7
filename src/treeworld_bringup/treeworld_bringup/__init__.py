"""Tree World bringup: the treeworld command, runner, launcher, bags, evaluation, plots."""
