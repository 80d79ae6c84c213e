"""What several tasks share: models, training loops, CartPole and its episodes."""
