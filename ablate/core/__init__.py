"""What every stage stands on: the tables' vocabulary (``schema``), the run's defaults and choice names
(``defaults``), the one exception root (``errors``), name registries (``registry``), atomic files (``files``),
YAML reading (``yamlfile``), cell formatting (``formatting``) and Pareto fronts (``pareto``). Nothing here imports
torch, and nothing here imports the stages above it."""
