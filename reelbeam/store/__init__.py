"""Where reelbeam's tables live: Delta Lake tables under OUTPUT/<table>/ (`tables`), outputs of
earlier versions (`legacy`), and the output's single-writer lease (`lease`)."""
