"""The paper's tables, regenerated from this pipeline's results beside the published numbers."""

#: The tables, by the name of their files (results/paper/tables/NAME.csv and .md), with their titles. The
#: scaling table exists only when an MC_Maze scaling size is configured. The one list of them: the
#: workflow and the CLI read it (here, not in tables.py, so that planning imports no scoring code).
MAIN_TABLE, ABLATION_TABLE, SCALING_TABLE = "table1_main", "table3_ablation", "table_scaling"
TABLE_TITLES = {
    MAIN_TABLE: "Table 1/2: STNDT and baselines",
    ABLATION_TABLE: "Table 3/4: ablations on equal pools of the same draws",
    SCALING_TABLE: "MC_Maze scaling (large / medium / small)",
}
