"""The PolyDecode Lab web app: one Gradio module per tab, plotly figure builders, shared helpers."""
