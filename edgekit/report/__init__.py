"""``edgekit report``: bench and eval results joined into one table per device, Markdown, and a plot of
accuracy against end-to-end latency with the Pareto front marked."""

from edgekit.report.join import join_results, load_documents

__all__ = ["join_results", "load_documents"]
