"""Figure builders: numbers in, a plotly figure or a Vega-Lite spec out. No Streamlit here.

Pages pass plotly figures to st.plotly_chart(fig, theme=None) (the Streamlit theme would
replace the colour-blind-safe colours) and Vega-Lite specs to st.vega_lite_chart.
"""

from .attention import attention_grid, attention_head_chart, attention_row_bars
from .classroom import board_chart, head_picker_spec, head_reveal_chart, token_reveal_chart
from .embeddings import embedding_scatter, neighbours_bars, similarity_heatmap
from .export import figure_to_html
from .phases import head_scores_over_training, icl_chart
from .predictions import logit_lens_chart, next_token_bars, residual_norm_heatmap
from .tokens import token_frequency_chart, token_html
from .training import loss_chart

__all__ = [
    "attention_grid", "attention_head_chart", "attention_row_bars",
    "board_chart", "head_picker_spec", "head_reveal_chart", "token_reveal_chart",
    "embedding_scatter", "neighbours_bars", "similarity_heatmap",
    "figure_to_html",
    "head_scores_over_training", "icl_chart",
    "logit_lens_chart", "next_token_bars", "residual_norm_heatmap",
    "token_frequency_chart", "token_html",
    "loss_chart",
]
