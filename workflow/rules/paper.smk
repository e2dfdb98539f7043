# Stage 4: the paper's tables and figures.


def paper_outputs():
    return data_outputs() + evaluation_outputs()
